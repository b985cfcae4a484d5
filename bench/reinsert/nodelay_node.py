"""`hotspare node` with one change, for the benchmark's "what if" row only: the API's listening
socket is created with proto=IPPROTO_TCP.

Why: `hotspare.node.runtime.bind_socket` creates it as socket(family, SOCK_STREAM), proto 0.
asyncio sets TCP_NODELAY on an accepted connection only when the socket's proto is IPPROTO_TCP,
and accepted sockets inherit the listener's proto; so the node's responses are sent with Nagle on
and each one waits for the client's delayed ACK (~40 ms on Linux loopback). This wrapper measures
what re-insert would do without that stall. It does not change the product.
"""

from __future__ import annotations

import socket
import sys

import hotspare.node.runtime as runtime
import hotspare.node.site_node as site_node
from hotspare.cli.main import main


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


runtime.bind_socket = bind_socket
site_node.bind_socket = bind_socket  # type: ignore[attr-defined]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Start and stop local etcd members as child processes.

`hotspare demo` needs a single-member etcd it owns, and the end-to-end tests need one or three
members they can kill, freeze and restart. Both want the same thing: an explicit binary, a data
directory, loopback URLs and a bounded wait until the member answers. This module uses only the
standard library (it never talks the etcd API; `etcd_adapter` alone does that) so that it works
before any client is configured.

TLS: given a site PKI (`hotspare.pki`), every member serves clients and peers over TLS and
demands a certificate from the site CA of both (`--client-cert-auth`, `--peer-client-cert-auth`),
so a client without one, or with one from another CA, fails its handshake. Without a PKI the
members speak plain HTTP, which only the callers that say so (insecure_plaintext) accept.

Freezing a member (`freeze`/`thaw`, SIGSTOP/SIGCONT) is test tooling and exists on POSIX only: it
is how the tests make etcd unreachable without closing its sockets, which is what a hung or
partitioned machine looks like to a client.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hotspare.etcd_security import EtcdTls
from hotspare.tcp_ports import pick_free_ports as pick_free_ports  # re-exported for tests and tools

if TYPE_CHECKING:
    from hotspare.pki.store import SitePki

ENV_BINARY = "HOTSPARE_ETCD_BINARY"
CLUSTER_CLIENT = "etcd-launcher"
"""The client certificate a TLS EtcdCluster issues for whoever started it (tests, the demo)."""

_INSTALL_HINT = (
    "install it with `apt-get install etcd-server` (Debian/Ubuntu, etcd 3.4) or download a release "
    "from https://github.com/etcd-io/etcd/releases (3.5.13 or newer recommended), then put it on "
    f"PATH or set {ENV_BINARY} to the full path of the etcd executable"
)


class EtcdProcessError(RuntimeError):
    """A local etcd member could not be found, started or stopped."""


class EtcdBinaryNotFound(EtcdProcessError):
    """No etcd executable was found where we looked."""


def find_etcd_binary(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Locate the etcd executable: explicit path, then $HOTSPARE_ETCD_BINARY, then PATH.

    The order lets an operator pin a version (explicit/env) while a fresh Debian machine just works.
    """
    for source, candidate in (("argument", explicit), (ENV_BINARY, os.environ.get(ENV_BINARY))):
        if candidate:
            path = Path(candidate).expanduser()
            if path.is_file() and os.access(path, os.X_OK):
                return path.resolve()
            raise EtcdBinaryNotFound(
                f"etcd binary given by {source} does not exist or is not executable: {path}; "
                + _INSTALL_HINT
            )
    found = shutil.which("etcd")
    if found:
        return Path(found).resolve()
    # Debian installs to /usr/bin, but a service environment may run with a reduced PATH.
    for fallback in (Path("/usr/bin/etcd"), Path("/usr/local/bin/etcd")):
        if sys.platform != "win32" and fallback.is_file() and os.access(fallback, os.X_OK):
            return fallback
    raise EtcdBinaryNotFound("no etcd executable found on PATH; " + _INSTALL_HINT)


@dataclass(frozen=True)
class EtcdMemberSpec:
    """Where one member listens; the name must be unique in its cluster."""

    name: str
    client_port: int
    peer_port: int
    host: str = "127.0.0.1"
    tls: bool = False

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def client_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.peer_port}"

    @property
    def endpoint(self) -> str:
        """`host:port` form, the one operators type and the adapter accepts."""
        return f"{self.host}:{self.client_port}"


def initial_cluster_arg(members: Sequence[EtcdMemberSpec]) -> str:
    return ",".join(f"{m.name}={m.peer_url}" for m in members)


def _http_json(url: str, timeout: float, body: bytes | None = None,
               context: ssl.SSLContext | None = None) -> dict[str, object]:
    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    if body is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
        data = json.loads(response.read().decode("utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"unexpected answer from {url}: {data!r}")
    return data


class EtcdProcess:
    """One etcd member run as our child.

    The process is started with its output in a log file, so a failure to start can be explained
    by quoting that log instead of "timed out".
    """

    def __init__(
        self,
        spec: EtcdMemberSpec,
        data_dir: Path,
        initial_cluster: Sequence[EtcdMemberSpec] | None = None,
        *,
        binary: str | os.PathLike[str] | None = None,
        cluster_token: str = "hotspare",
        log_path: Path | None = None,
        heartbeat_interval_ms: int = 100,
        election_timeout_ms: int = 1000,
        extra_args: Sequence[str] = (),
        tls: EtcdTls | None = None,
    ) -> None:
        """`tls`: the site CA and this member's own certificate (server and client usage, as
        `hotspare pki issue-etcd` makes it); required when `spec.tls`, and also the identity
        this launcher uses for its own health checks."""
        if spec.tls and (tls is None or tls.cert_file is None or tls.ca_file is None):
            raise EtcdProcessError(f"etcd member {spec.name}: TLS needs the CA file and the "
                                   "member's certificate and key")
        self.tls = tls if spec.tls else None
        self._context = self.tls.ssl_context() if self.tls is not None else None
        self.spec = spec
        self.data_dir = Path(data_dir)
        self.initial_cluster: tuple[EtcdMemberSpec, ...] = tuple(initial_cluster or (spec,))
        self.binary = find_etcd_binary(binary)
        self.cluster_token = cluster_token
        self.log_path = log_path or self.data_dir.parent / f"{spec.name}.etcd.log"
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.election_timeout_ms = election_timeout_ms
        self.extra_args = tuple(extra_args)
        self._proc: subprocess.Popen[bytes] | None = None
        self._frozen = False

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def client_url(self) -> str:
        return self.spec.client_url

    @property
    def endpoint(self) -> str:
        return self.spec.endpoint

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def command(self) -> list[str]:
        # An existing data dir means the member was started before: etcd then ignores the
        # initial-cluster flags, so the same command line serves start and restart.
        return [
            str(self.binary),
            "--name", self.spec.name,
            "--data-dir", str(self.data_dir),
            "--listen-client-urls", self.spec.client_url,
            "--advertise-client-urls", self.spec.client_url,
            "--listen-peer-urls", self.spec.peer_url,
            "--initial-advertise-peer-urls", self.spec.peer_url,
            "--initial-cluster", initial_cluster_arg(self.initial_cluster),
            "--initial-cluster-token", self.cluster_token,
            "--initial-cluster-state", "new",
            "--heartbeat-interval", str(self.heartbeat_interval_ms),
            "--election-timeout", str(self.election_timeout_ms),
            # Idle watches get a progress notification this often, which lets the adapter tell a
            # quiet stream from a dead one (its watch_idle_timeout is longer than this).
            "--experimental-watch-progress-notify-interval", "5s",
            *self._tls_args(),
            *self.extra_args,
        ]

    def _tls_args(self) -> list[str]:
        if self.tls is None:
            return []
        ca, cert, key = (str(p) for p in (self.tls.ca_file, self.tls.cert_file, self.tls.key_file))
        return ["--cert-file", cert, "--key-file", key, "--trusted-ca-file", ca,
                "--client-cert-auth",
                "--peer-cert-file", cert, "--peer-key-file", key, "--peer-trusted-ca-file", ca,
                "--peer-client-cert-auth"]

    def start(self, *, wait: bool = True, timeout: float = 20.0) -> None:
        if self.running:
            raise EtcdProcessError(f"etcd member {self.name} is already running (pid {self.pid})")
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        try:
            creationflags = 0
            if sys.platform == "win32":
                creationflags = subprocess.CREATE_NEW_PROCESS_GROUP
            self._proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                creationflags=creationflags,
            )
        finally:
            log.close()
        self._frozen = False
        if wait:
            self.wait_healthy(timeout)

    def is_healthy(self, timeout: float = 1.0) -> bool:
        """True when the member answers /health with a leader known (cluster has quorum)."""
        try:
            data = _http_json(self.client_url + "/health", timeout, context=self._context)
        except (OSError, ValueError, urllib.error.URLError):
            return False
        return str(data.get("health")).lower() == "true"

    def wait_healthy(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                raise EtcdProcessError(
                    f"etcd member {self.name} exited with code {self._proc.returncode} while "
                    f"starting; last lines of {self.log_path}:\n{self.log_tail()}"
                )
            if self.is_healthy():
                return
            if time.monotonic() >= deadline:
                raise EtcdProcessError(
                    f"etcd member {self.name} at {self.client_url} not healthy after "
                    f"{timeout:.1f} s; last lines of {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def member_status(self, timeout: float = 1.0) -> dict[str, object]:
        """The member's own status (leader id, raft term); used to find the leader in tests."""
        return _http_json(self.client_url + "/v3/maintenance/status", timeout, body=b"{}",
                          context=self._context)

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate gracefully, then kill if it does not exit within `timeout`."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            if self._frozen:
                self.thaw()  # a stopped process cannot handle SIGTERM
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        self._frozen = False

    def kill(self) -> None:
        """Crash the member (SIGKILL on POSIX, TerminateProcess on Windows)."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.kill()
        proc.wait(10.0)
        self._frozen = False

    def freeze(self) -> None:
        """SIGSTOP the member: sockets stay open, nothing answers. POSIX-only test tooling."""
        if sys.platform == "win32":
            raise EtcdProcessError("freezing a process (SIGSTOP) is only available on POSIX")
        if not self.running:
            raise EtcdProcessError(f"etcd member {self.name} is not running")
        assert self.pid is not None
        os.kill(self.pid, signal.SIGSTOP)
        self._frozen = True

    def thaw(self) -> None:
        """SIGCONT a frozen member. POSIX-only test tooling."""
        if sys.platform == "win32":
            raise EtcdProcessError("thawing a process (SIGCONT) is only available on POSIX")
        if self.pid is not None and self.running:
            os.kill(self.pid, signal.SIGCONT)
        self._frozen = False


class EtcdCluster:
    """One or more members started together on loopback, for the demo and the tests."""

    def __init__(
        self,
        base_dir: Path,
        size: int = 1,
        *,
        binary: str | os.PathLike[str] | None = None,
        host: str = "127.0.0.1",
        cluster_token: str | None = None,
        heartbeat_interval_ms: int = 100,
        election_timeout_ms: int = 1000,
        ports: Sequence[int] | None = None,
        fresh: bool = True,
        pki: SitePki | None = None,
    ) -> None:
        """`fresh=False` keeps existing data dirs (a restarted demo keeps its state); pass the
        same `ports` as before then, because a member's peer URL is recorded in its data dir.
        `pki`: run with client and peer TLS and client-certificate auth, member certificates
        `etcd0`… and the launcher's client certificate issued from it when missing; None: plain
        HTTP (clients must then say insecure_plaintext).
        """
        if size < 1:
            raise ValueError("an etcd cluster needs at least one member")
        self.base_dir = Path(base_dir)
        self.size = size
        self.host = host
        self._binary = find_etcd_binary(binary)
        self._token = cluster_token or f"hotspare-{os.getpid()}-{time.monotonic_ns()}"
        self._timing = (heartbeat_interval_ms, election_timeout_ms)
        self._ports = list(ports) if ports is not None else None
        if self._ports is not None and len(self._ports) != 2 * size:
            raise ValueError(f"need {2 * size} ports (client and peer per member)")
        self.fresh = fresh
        self.pki = pki
        self.members: list[EtcdProcess] = []
        self.client_tls: EtcdTls | None = None
        """What a client of this cluster presents (None: plaintext, see `insecure_plaintext`)."""
        if pki is not None:
            from hotspare.pki.certs import CertKind

            files = pki.ensure(CertKind.CLIENT, CLUSTER_CLIENT)
            self.client_tls = EtcdTls(files.ca_file, files.cert_file, files.key_file)

    @property
    def insecure_plaintext(self) -> bool:
        return self.pki is None

    def member_tls(self, spec: EtcdMemberSpec) -> EtcdTls | None:
        """The member's certificate (server and peer, naming its host), issued when missing."""
        if self.pki is None:
            return None
        from hotspare.pki.certs import CertKind

        files = self.pki.ensure(CertKind.ETCD, spec.name, [spec.host])
        return EtcdTls(files.ca_file, files.cert_file, files.key_file)

    def cli_args(self) -> list[str]:
        """The `hotspare` command-line options that reach this cluster as its launcher does."""
        if self.client_tls is None:
            return ["--etcd-insecure-plaintext"]
        tls = self.client_tls
        return ["--etcd-ca-file", str(tls.ca_file), "--etcd-cert-file", str(tls.cert_file),
                "--etcd-key-file", str(tls.key_file)]

    def _build(self) -> None:
        ports = self._ports or pick_free_ports(2 * self.size, self.host)
        specs = [
            EtcdMemberSpec(f"etcd{i}", ports[2 * i], ports[2 * i + 1], self.host,
                           tls=self.pki is not None)
            for i in range(self.size)
        ]
        self.members = [
            EtcdProcess(
                spec,
                self.base_dir / spec.name,
                specs,
                binary=self._binary,
                cluster_token=self._token,
                log_path=self.base_dir / f"{spec.name}.log",
                heartbeat_interval_ms=self._timing[0],
                election_timeout_ms=self._timing[1],
                tls=self.member_tls(spec),
            )
            for spec in specs
        ]

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    def start(self, timeout: float = 30.0, attempts: int = 3) -> None:
        """Start every member and wait for all to be healthy; retries on a port race."""
        last_error: Exception | None = None
        for _ in range(attempts):
            self._build()
            if self.fresh:
                for d in (m.data_dir for m in self.members):
                    if d.exists():
                        shutil.rmtree(d)
            try:
                for member in self.members:
                    member.start(wait=False)
                for member in self.members:
                    member.wait_healthy(timeout)
                return
            except EtcdProcessError as exc:
                last_error = exc
                self.stop()
                if self._ports is not None:
                    break
        raise EtcdProcessError(f"could not start a {self.size}-member etcd cluster: {last_error}")

    def stop(self) -> None:
        for member in self.members:
            with contextlib.suppress(Exception):
                member.stop()

    def leader(self, timeout: float = 10.0) -> EtcdProcess:
        """The member that currently leads (waits for an election if there is none)."""
        deadline = time.monotonic() + timeout
        while True:
            for member in self.members:
                if not member.running:
                    continue
                try:
                    status = member.member_status()
                except (OSError, ValueError):
                    continue
                header = status.get("header")
                if isinstance(header, dict) and status.get("leader") and str(
                    status.get("leader")
                ) == str(header.get("member_id")):
                    return member
            if time.monotonic() >= deadline:
                raise EtcdProcessError(f"no etcd leader elected within {timeout:.1f} s")
            time.sleep(0.05)

    def __enter__(self) -> EtcdCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

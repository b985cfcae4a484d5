"""`hotspare user new-token NAME --role ROLE`: a new token for a user or API client.

Shows the token once (on stderr, or into `--token-file`) and prints on stdout only the
`[[api.users]]` lines holding its salted hash, to append to every node's configuration of the site:
the token itself is never stored by hotspare, so losing it means making a new one, and a leaked
config file lets nobody in.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from hotspare.config.models import is_identifier


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("user", help="tokens for users and API clients")
    sub = parser.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    new = sub.add_parser(
        "new-token",
        help="print a new token and the [[api.users]] lines (its hash) for node configs",
    )
    new.add_argument("name", help="the user's or client's name (lower-case id, e.g. alice)")
    new.add_argument("--role", required=True, choices=["viewer", "operator", "admin"],
                     help="viewer reads, operator acts on recording, admin configures")
    new.add_argument("--token-file", type=Path,
                     help="write the token to this file (mode 0600) instead of printing it")
    new.set_defaults(handler=_new_token)


def user_block(name: str, role: str, token_hash: str) -> str:
    """The TOML lines for one user, as `[[api.users]]` in a node's file."""
    return f'[[api.users]]\nname = "{name}"\nrole = "{role}"\ntoken_hash = "{token_hash}"\n'


def write_secret(path: Path, text: str) -> None:
    """Create the file readable by its owner only before the secret goes in."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)


def _new_token(args: argparse.Namespace) -> int:
    from hotspare.api.tokens import hash_token, new_token

    if not is_identifier(args.name) or args.name == "node":
        print(f"hotspare user: {args.name!r} is not a valid user name: use lower-case letters, "
              "digits, '-' and '_' (at most 63 characters; `node` is reserved)", file=sys.stderr)
        return 2
    token = new_token(args.name)
    block = user_block(args.name, args.role, hash_token(token))
    if args.token_file is not None:
        write_secret(args.token_file, token + "\n")
        print(f"token for {args.name} written to {args.token_file}", file=sys.stderr)
    else:  # on stderr, so `... >> node.toml` appends the hash lines and never the token
        print(f"token for {args.name} (shown once; hotspare keeps only its hash):\n{token}",
              file=sys.stderr)
    print(block, end="")
    return 0

"""`hotspare licence`: make signing keys, issue, verify and show licence files.

Issuing is the vendor's side, verifying the site's; both live in one command so a vendor can check a
file exactly as a site will before sending it.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from hotspare.config.models import is_identifier
from hotspare.signing_keys import (
    KeyFileError,
    TrustedPublicKey,
    generate_keypair,
    read_private_key,
    read_public_key,
)
from hotspare.site.licences import (
    LicenceDocument,
    LicenceRefused,
    issue_licence,
    read_unverified,
    validity_window,
    verify_licence,
    write_licence_file,
)


def _parse_time(value: str) -> datetime:
    """ISO 8601; a date or time without a zone is UTC, so results never depend on the host."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date/time: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _non_negative(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {number}")
    return number


def _positive_days(value: str) -> float:
    try:
        days = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of days: {value!r}") from None
    if not days > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 days, got {value}")
    return days


def _fail(message: str) -> int:
    print(f"hotspare licence: {message}", file=sys.stderr)
    return 1


def _keygen(args: argparse.Namespace) -> int:
    try:
        private_path, public_path, key_id = generate_keypair(args.out, args.name)
    except (KeyFileError, OSError) as exc:
        return _fail(str(exc))
    print(f"private key: {private_path}  (keep it secret; it signs licences)")
    print(f"public key:  {public_path}  (sites trust it by adding it to licence-keys.pem "
          "beside each node.toml and beside site.toml; not in site.toml itself)")
    print(f"key id:      {key_id}")
    return 0


def _issue(args: argparse.Namespace) -> int:
    if not is_identifier(args.site):
        return _fail(
            f"--site {args.site!r} is not a site id (lower-case letters, digits, '-', '_')"
        )
    try:
        key = read_private_key(args.key)
        not_before, not_after = validity_window(args.days, args.not_before)
        text = issue_licence(
            key, args.site, args.servers, args.cameras, not_before, not_after, args.id
        )
        write_licence_file(args.out, text)
    except (KeyFileError, ValueError, OSError) as exc:
        return _fail(str(exc))
    document = read_unverified(text, str(args.out))
    print(f"wrote {args.out}: {_summary(document)}")
    return 0


def _trusted(paths: list[Path]) -> list[TrustedPublicKey]:
    return [read_public_key(path) for path in paths]


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(
            f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})"
        ) from None


def _verify(args: argparse.Namespace) -> int:
    try:
        trusted = _trusted(args.trust)
        text = _read(args.file)
    except KeyFileError as exc:
        return _fail(str(exc))
    now = args.at or datetime.now(UTC)
    try:
        licence = verify_licence(text, trusted, args.site, now, str(args.file))
    except LicenceRefused as refusal:
        print(f"REFUSED [{refusal.reason.value}] {refusal}", file=sys.stderr)
        return 3
    print(f"valid: {_summary(licence.document)}")
    return 0


def _show(args: argparse.Namespace) -> int:
    try:
        document = read_unverified(_read(args.file), str(args.file))
    except (KeyFileError, LicenceRefused) as exc:
        return _fail(str(exc))
    print("(signature NOT checked; use `hotspare licence verify` for that)")
    for name, value in document.model_dump(mode="json").items():
        print(f"{name:26} {value}")
    return 0


def _summary(document: LicenceDocument) -> str:
    return (
        f"licence {document.licence_id} for site {document.site_id!r}: "
        f"{document.failover_server_licences} failover-server and "
        f"{document.failover_camera_licences} failover-camera licence(s), "
        f"valid {document.not_before.isoformat()} until {document.not_after.isoformat()}, "
        f"signed by {document.issuer_key_id}"
    )


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "licence", help="make keys, issue, verify and show licence files"
    )
    commands = parser.add_subparsers(dest="licence_command", metavar="ACTION", required=True)

    keygen = commands.add_parser("keygen", help="create an Ed25519 signing key pair")
    keygen.add_argument("--out", type=Path, required=True, help="folder for NAME.key and NAME.pub")
    keygen.add_argument("--name", default="licence-signing", help="base name of the key files")
    keygen.set_defaults(handler=_keygen)

    issue = commands.add_parser("issue", help="sign a licence for a site")
    issue.add_argument("--key", type=Path, required=True, help="private key file (from keygen)")
    issue.add_argument("--site", required=True, help="site id the licence is for")
    issue.add_argument(
        "--servers", type=_non_negative, required=True, help="failover-server licences"
    )
    issue.add_argument(
        "--cameras", type=_non_negative, required=True, help="failover-camera licences"
    )
    issue.add_argument("--days", type=_positive_days, required=True, help="days of validity")
    issue.add_argument(
        "--not-before", type=_parse_time, default=None, help="start (ISO 8601, default now)"
    )
    issue.add_argument("--id", default=None, help="licence id (default: random)")
    issue.add_argument("--out", type=Path, required=True, help="licence file to write")
    issue.set_defaults(handler=_issue)

    verify = commands.add_parser("verify", help="check a licence as a site would")
    verify.add_argument("file", type=Path)
    verify.add_argument(
        "--trust", type=Path, action="append", required=True, help="trusted public key (repeatable)"
    )
    verify.add_argument("--site", default=None, help="also refuse a licence for another site")
    verify.add_argument(
        "--at", type=_parse_time, default=None, help="check validity at this time instead of now"
    )
    verify.set_defaults(handler=_verify)

    show = commands.add_parser("show", help="print a licence's content without checking it")
    show.add_argument("file", type=Path)
    show.set_defaults(handler=_show)

"""`hotspare export`: an evidence clip with a signed manifest, the key that signs it, and the
check an examiner runs.

    hotspare export CAMERA --from T --to T -o clip.mp4 --node URL --token-file FILE
    hotspare export keygen DIR
    hotspare export verify clip.mp4 clip.manifest.json --key export-signing.pub

The master builds the clip (from what the site serves) and signs the manifest; this command
starts the job, shows its progress, and writes both files under temporary names, renamed only
when the clip's hash matches the manifest, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hotspare.cli.tls_option import add_ca_option, client_verify
from hotspare.timefmt import TimeFormatError, format_wall_us, parse_wall_time, wall_now_us

_ACTIONS = ("keygen", "verify")
KEY_NAME = "export-signing"
POLL_SECONDS = 0.5


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "export", add_help=False,
        help="export a camera's range as one MP4 with a signed manifest; keygen; verify",
        description="Export, create the signing key, or verify an export (see --help of each).",
        usage="hotspare export CAMERA --from T --to T -o FILE --node URL --token-file FILE\n"
              "       hotspare export keygen DIR\n"
              "       hotspare export verify CLIP MANIFEST --key PUBLIC_KEY_FILE",
    )
    parser.add_argument("-h", "--help", action="store_true", dest="export_help")
    # CAMERA, keygen or verify first: the rest is parsed by the form it names
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    parser.set_defaults(handler=run)


def _export_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hotspare export",
        description="Export one camera's range as one MP4 (packets copied, never re-encoded) "
        "from whichever nodes hold the video, with a manifest signed by the site's export key.")
    parser.add_argument("camera", help="camera id")
    parser.add_argument("--from", dest="from_", required=True, metavar="T",
                        help="start: ISO-8601 (local time if no zone), µs since the epoch, or "
                        "relative like -10m")
    parser.add_argument("--to", default="now", metavar="T", help="end, same formats (default: now)")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="FILE",
                        help="the clip to write (.mp4); refused if it exists")
    parser.add_argument("--manifest", type=Path, metavar="FILE",
                        help="the manifest to write (default: the clip's name with "
                        ".manifest.json)")
    parser.add_argument("--node", required=True, action="append", metavar="URL",
                        help="any node(s) of the site (repeatable): the master is found")
    parser.add_argument("--token-file", required=True, type=Path, metavar="FILE",
                        help="file holding an API token of role operator or above")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds per request (default: 30)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    add_ca_option(parser)
    return parser


def _keygen_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hotspare export keygen",
        description=f"Create the site's export signing key: DIR/{KEY_NAME}.key (private, mode "
        f"0600; copy it to each node that may serve the site API and name it in [site] "
        f"export_signing_key_file) and DIR/{KEY_NAME}.pub (give it to whoever verifies).")
    parser.add_argument("directory", type=Path, metavar="DIR")
    parser.add_argument("--name", default=KEY_NAME, help=f"file name stem (default: {KEY_NAME})")
    return parser


def _verify_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hotspare export verify",
        description="Check an export: the manifest's signature against a public key you trust, "
        "the clip's SHA-256, and that the clip holds exactly the frames the manifest lists.")
    parser.add_argument("clip", type=Path)
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--key", required=True, type=Path, metavar="PUBLIC_KEY_FILE",
                        help="the site's export public key (PEM or base64), from a source you "
                        "trust, not from the manifest")
    return parser


def run(args: argparse.Namespace) -> int:
    rest: list[str] = list(args.rest)
    if args.export_help or not rest or rest[0] in ("-h", "--help"):
        print(_export_parser().format_help())
        print("other forms:\n  hotspare export keygen DIR\n"
              "  hotspare export verify CLIP MANIFEST --key PUBLIC_KEY_FILE")
        return 0 if rest or args.export_help else 2
    if rest[0] == "keygen":
        return _keygen(_keygen_parser().parse_args(rest[1:]))
    if rest[0] == "verify":
        return _verify(_verify_parser().parse_args(rest[1:]))
    return _export(_export_parser().parse_args(rest))


def _keygen(args: argparse.Namespace) -> int:
    from hotspare.signing_keys import KeyFileError, generate_keypair

    try:
        private, public, key_id = generate_keypair(args.directory, args.name)
    except (KeyFileError, OSError) as exc:
        print(f"hotspare export keygen: {exc}", file=sys.stderr)
        return 1
    print(f"export signing key {key_id}\n  private: {private}\n  public:  {public}\n"
          f"In node.toml of each node that may serve the site API, under [site]:\n"
          f'  export_signing_key_file = "{private}"')
    return 0


def _verify(args: argparse.Namespace) -> int:
    from hotspare.export.verify import VerifyFailed, verify
    from hotspare.signing_keys import KeyFileError, read_public_key

    try:
        key = read_public_key(args.key)
    except KeyFileError as exc:
        print(f"hotspare export verify: {exc}", file=sys.stderr)
        return 2
    try:
        manifest = verify(args.clip, args.manifest, key.key)
    except VerifyFailed as exc:
        print(f"hotspare export verify: FAILED: {exc}", file=sys.stderr)
        return 1
    clip = manifest["clip"]
    print(f"OK: {args.clip} is the export of camera {manifest['camera']} of site "
          f"{manifest['site_id']} signed by {key.key_id}: {clip['frame_count']} frames in "
          f"{len(manifest['pieces'])} piece(s), {len(manifest['gaps'])} gap(s), "
          f"{format_wall_us(clip['first_frame_wall_us'])} .. {format_wall_us(clip['end_wall_us'])}")
    for gap in manifest["gaps"]:
        print(f"  gap {format_wall_us(gap['start_wall_us'])} .. "
              f"{format_wall_us(gap['end_wall_us'])}: {gap['cause']} ({gap['detail']})")
    return 0


@contextlib.contextmanager
def _temporary(final: Path) -> Iterator[Path]:
    """A name beside `final` that is removed unless the caller renamed it."""
    temp = final.with_name(f".{final.name}.{os.getpid()}.part")
    try:
        yield temp
    finally:
        temp.unlink(missing_ok=True)


def _export(args: argparse.Namespace) -> int:
    import httpx

    from hotspare.client.node_client import NodeApiError, raise_for_problem
    from hotspare.client.site_client import SiteClient, SiteUnreachable
    from hotspare.export.verify import file_sha256
    from hotspare.tls import explain

    def fail(message: str, code: int = 1) -> int:
        print(f"hotspare export: {message}", file=sys.stderr)
        return code

    now = wall_now_us()
    try:
        from_us = parse_wall_time(args.from_, naive_is_local=True, now_us=now)
        to_us = parse_wall_time(args.to, naive_is_local=True, now_us=now)
    except TimeFormatError as exc:
        return fail(str(exc), 2)
    if to_us <= from_us:
        return fail(f"--to ({format_wall_us(to_us)}) is not after --from "
                    f"({format_wall_us(from_us)}); swap them or widen the range", 2)
    manifest_path = args.manifest or args.output.with_name(
        args.output.stem + ".manifest.json")
    for path in (args.output, manifest_path):
        if path.exists():
            return fail(f"{path} exists; refusing to overwrite evidence: choose another name", 2)
    try:
        token = args.token_file.read_text(encoding="utf-8").strip()
        verify = client_verify(args)
    except OSError as exc:
        return fail(f"can't read token file {args.token_file}: {exc.strerror}", 2)
    except ValueError as exc:
        return fail(str(exc), 2)
    site = SiteClient([u for v in args.node for u in v.split(",") if u], token,
                      timeout=args.timeout, verify=verify)
    try:
        master = site.discover()
    except SiteUnreachable as exc:
        return fail(str(exc))
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=master + "/api/v1", headers=headers, timeout=args.timeout,
                      verify=verify) as http:
        try:
            answer = http.post(f"/site/cameras/{args.camera}/exports",
                               params={"from": from_us, "to": to_us})
            raise_for_problem(answer)
            job = answer.json()
            job = _wait(http, job, args.quiet)
            if job["state"] != "done":
                return fail(f"the export failed on {master}: {job['detail']} ({job['error']})")
            with _temporary(args.output) as clip_temp, _temporary(manifest_path) as man_temp:
                _download(http, f"/site/exports/{job['job_id']}/clip.mp4", clip_temp)
                _download(http, f"/site/exports/{job['job_id']}/manifest.json", man_temp)
                manifest = _read_json(man_temp)
                if file_sha256(clip_temp) != manifest["clip"]["sha256"]:
                    return fail("the downloaded clip's SHA-256 differs from the manifest's: "
                                "the transfer was damaged; export again")
                os.replace(clip_temp, args.output)
                os.replace(man_temp, manifest_path)
        except NodeApiError as exc:
            return fail(f"the master refused: {exc.detail} ({exc.error})")
        except httpx.HTTPError as exc:
            return fail(f"lost the master at {master} during the export: {explain(exc)}; "
                        "export again")
    _summary(manifest, args.output, manifest_path)
    return 0


def _wait(http: Any, job: dict[str, Any], quiet: bool) -> dict[str, Any]:
    from hotspare.client.node_client import raise_for_problem

    last = ""
    while job["state"] == "running":
        time.sleep(POLL_SECONDS)
        answer = http.get(f"/site/exports/{job['job_id']}")
        raise_for_problem(answer)
        job = answer.json()
        line = (f"export: {job['pieces_done']}/{job['pieces_total']} pieces, "
                f"{job['frames_done']} frames, {job['bytes_done'] / 1e6:.1f} MB")
        if not quiet and line != last:
            print(line, file=sys.stderr)
            last = line
    return job


def _download(http: Any, path: str, into: Path) -> None:
    from hotspare.client.node_client import raise_for_problem

    with http.stream("GET", path) as answer:
        if answer.status_code != 200:
            answer.read()
            raise_for_problem(answer)
        with into.open("wb") as out:
            for chunk in answer.iter_bytes():
                out.write(chunk)


def _read_json(path: Path) -> dict[str, Any]:
    import json

    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def _summary(manifest: dict[str, Any], clip: Path, manifest_path: Path) -> None:
    info = manifest["clip"]
    print(f"wrote {clip} ({info['frame_count']} frames from {len(manifest['pieces'])} piece(s), "
          f"SHA-256 {info['sha256']}) and {manifest_path} (signed by "
          f"{manifest['signing_key_id']})")
    for gap in manifest["gaps"]:
        print(f"warning: gap {format_wall_us(gap['start_wall_us'])} .. "
              f"{format_wall_us(gap['end_wall_us'])}: {gap['cause']}: {gap['detail']}",
              file=sys.stderr)

"""`hotspare site apply site.toml`: validate a site configuration and store it in etcd.

Added to the `site` command by `cmd_site.register` (this module's own `register` adds nothing, so
the command dispatcher's discovery of `cmd_*` modules stays harmless).

Licences (docs/licences.md, "Applying a site file"): every licence the file names must verify.
A forged, expired, other-site, unreadable or otherwise refused licence refuses the **whole** apply
and nothing in etcd changes: the operator asked for that licence to count, and a configuration
half-applied without it would silently leave servers unprotected (docs/design.md, invariants:
every refusal is a clear error; nothing is half-written). `--drop-refused-licences` applies the
rest knowingly, naming each licence dropped. Licences the site already holds and the file no
longer names are kept until they expire (merge semantics: a file can add licences, never silently
remove one).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from hotspare.cli.etcd_option import add_etcd_options, coordinator
from hotspare.cli.licence_keys import (
    add_licence_keys_option,
    install_licence_keys,
    warn_ignored_document_keys,
)
from hotspare.config.load import ConfigError
from hotspare.coordination.errors import CoordinationError
from hotspare.coordination.etcd_adapter import Coordinator
from hotspare.signing_keys import KeyFileError, TrustedPublicKey, trust_roots
from hotspare.site.eligibility import IDLE
from hotspare.site.licence_plan import plan_licences
from hotspare.site.load import load_site_config, load_site_licences, read_trusted_keys
from hotspare.site.model import SiteConfig
from hotspare.site.report import protection_report, render_text
from hotspare.site_secret import SITE_SECRET_FILE, SiteSecret, read_site_secret
from hotspare.sitestate import applied as site_config
from hotspare.sitestate import layout

APPLY_REQUEST_SECONDS = 10.0
APPLY_DEADLINE_SECONDS = 30.0
EXIT_LICENCE_REFUSED = 5


def _held(coord: Coordinator) -> tuple[int, list[str], list[TrustedPublicKey], int]:
    """The stored configuration's mod revision (0: none), licence texts, trusted keys, and the
    number of licences that count today."""
    kv = coord.get(layout.SITE_CONFIG)
    if kv is None:
        return 0, [], [], 0
    try:
        stored = site_config.decode(kv.value)
        trusted = list(trust_roots())
        counted = len(load_site_licences(stored, datetime.now(UTC)).licences)
    except ConfigError as exc:
        print(f"warning: the stored site configuration is unreadable ({exc}); it holds no "
              "licences this apply could keep", file=sys.stderr)
        return kv.mod_revision, [], [], 0
    texts = [ref.text for ref in stored.licences if ref.text is not None]
    return kv.mod_revision, texts, trusted, counted


def _ours(coord: Coordinator, document: bytes) -> int | None:
    """The revision of the stored configuration if it is the one this apply wrote."""
    kv = coord.get(layout.SITE_CONFIG)
    return kv.mod_revision if kv is not None and kv.value == document else None


def _apply(args: argparse.Namespace) -> int:
    try:
        site = load_site_config(args.file)
        trusted = install_licence_keys(args, args.file)
        warn_ignored_document_keys(site, trusted, read_trusted_keys(site.trusted_keys))
        site = site_config.seal_passwords(site, _site_secret(args))
        endpoints = args.etcd or site.etcd.endpoints
        # Up to 0.5 MB each way at 10 000 cameras (2.6 MB before compression): on a loaded etcd
        # a 2 s attempt gave up on a write that was only slow and sent it again to the next
        # member (bench site_scale, 200 servers). An operator's one-off write can wait.
        coord = coordinator(args, endpoints, layout.site_prefix(site.site.id),
                            timeout=APPLY_REQUEST_SECONDS, deadline=APPLY_DEADLINE_SECONDS)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    try:
        return _apply_with(args, site, trusted, coord)
    except (CoordinationError, ConfigError) as exc:
        print(f"site {site.site.id!r} not applied: {exc}", file=sys.stderr)
        return 3
    finally:
        coord.close()


def _apply_with(args: argparse.Namespace, site: SiteConfig, trusted: list[TrustedPublicKey],
                coord: Coordinator) -> int:
    now = datetime.now(UTC)
    stored_revision, held_texts, held_trusted, held_count = _held(coord)
    plan, texts = plan_licences(site, trusted, held_texts, held_trusted, now)
    for problem in plan.problems:
        print(problem.line(), file=sys.stderr)
    if plan.problems and not args.drop_refused_licences:
        revision = coord.revision()
        print(f"site apply REFUSED: {len(plan.problems)} licence(s) above cannot be accepted; "
              f"nothing was written to etcd (revision {revision} unchanged). The site keeps "
              f"the {held_count} licence(s) it holds now. Remove or replace the licence(s) "
              "named above and apply again, or pass --drop-refused-licences to apply the rest "
              "without them.", file=sys.stderr)
        return EXIT_LICENCE_REFUSED
    for problem in plan.problems:
        print(f"dropped (--drop-refused-licences): {problem.line()}", file=sys.stderr)
    applied_site = site.model_copy(update={"licences": plan.licence_refs(texts)})
    licences = load_site_licences(applied_site, now)
    states = {spare.name: IDLE for spare in site.failover_servers}
    report = protection_report(applied_site, states, licences.licences, now)
    if args.strict and report.unprotected:
        print(render_text(report), file=sys.stderr)
        print("refusing to apply (--strict: a server would be unprotected); nothing was written",
              file=sys.stderr)
        return 4
    document = site_config.stored_value(site_config.inline(applied_site))
    written = coord.put_if_revision(layout.SITE_CONFIG, document, stored_revision)
    if written is None:
        written = _ours(coord, document)  # an attempt that timed out may have been committed
    if written is None:
        print(f"site {site.site.id!r} not applied: the stored configuration changed while this "
              "apply ran (another operator?); nothing was written, run it again",
              file=sys.stderr)
        return 3
    print(f"applied site {site.site.id!r} at etcd revision {written} "
          f"({len(site.recording_servers)} recording server(s), "
          f"{len(site.failover_servers)} spare(s), {len(licences.licences)} licence(s))")
    if plan.carried:
        print(f"kept {len(plan.carried)} licence(s) the site already holds that the file no "
              f"longer names (until they expire): {', '.join(i for i, _ in plan.carried)}")
    if plan.expired_held:
        print(f"no longer stored (expired): {', '.join(plan.expired_held)}")
    print(render_text(report))
    print("(spares assumed up and idle; `hotspare protection` shows the live states)")
    return 0


def add_apply(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    apply = commands.add_parser("apply", help="validate a site.toml and store it in etcd")
    apply.add_argument("file", type=Path)
    apply.add_argument("--etcd", action="append", metavar="URL",
                       help="etcd endpoint (repeatable); default: the file's [etcd] endpoints")
    apply.add_argument("--strict", action="store_true",
                       help="refuse (exit 4) when a server would be unprotected")
    apply.add_argument("--drop-refused-licences", action="store_true",
                       help="apply the rest when a licence is refused (each one dropped is "
                            "named); without it a refused licence refuses the whole apply (exit 5)")
    add_etcd_options(apply)
    add_licence_keys_option(apply, "the site file")
    apply.add_argument("--site-secret", type=Path, metavar="FILE",
                       help=f"the site secret camera passwords are sealed with (`hotspare pki "
                       f"site-secret`); default {SITE_SECRET_FILE} beside the site file; needed "
                       "only when a camera has a password")
    apply.set_defaults(handler=_apply)


def _site_secret(args: argparse.Namespace) -> SiteSecret | None:
    """The named file must be readable; the default one may be absent (then a camera password
    refuses the apply, naming the camera: `applied.seal_passwords`)."""
    path: Path | None = args.site_secret
    if path is None:
        path = args.file.parent / SITE_SECRET_FILE
        if not path.exists():
            return None
    try:
        return read_site_secret(path)
    except KeyFileError as exc:
        raise ConfigError(f"--site-secret: {exc}") from None


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Nothing of its own: `apply` hangs under `site` (see module docstring)."""

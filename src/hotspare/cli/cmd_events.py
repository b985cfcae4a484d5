"""`hotspare events [--follow]`: the site's failover events, oldest first.

Two ways to reach them. `--node URL …` asks the site API of whichever node is master now and
follows the master through its own failover (as `hotspare status` does): what an operator with
the API's token uses. `--config NODE.toml` or `--etcd URL --site ID` reads etcd directly: what
works when no node is running at all, e.g. to see why none started.
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import time
from pathlib import Path
from typing import Any

from hotspare.cli.etcd_option import add_etcd_options, coordinator
from hotspare.config.load import ConfigError, load_node_config
from hotspare.coordination.errors import CoordinationError
from hotspare.coordination.etcd_adapter import Coordinator
from hotspare.coordination.models import ChangeType, WatchBatch
from hotspare.sitestate import layout
from hotspare.sitestate.events import Event, read_events

WAITING = "hotspare events: no events yet; waiting for new ones (Ctrl-C stops)"
"""Said once when following an empty log: a healthy new site has none, and silence looked hung."""
SITE_LIMIT = 1000
"""The most events the site API hands out per request."""
LOOKBACK_US = 5_000_000
"""Each poll asks again for this much before the newest event seen: events carry their own
node's wall time, so one from a node whose clock is a little behind can arrive after a newer one
was printed. Events already printed are recognised and skipped."""


def _coordinator(args: argparse.Namespace) -> Coordinator:
    if args.config is not None:
        node = load_node_config(args.config)
        if node.site is None:
            raise ConfigError(f"{args.config}: has no [site] table; pass --etcd and --site")
        return Coordinator.for_member(node.site)
    if not args.etcd or not args.site:
        raise ConfigError("name the site: --node URL --token-file FILE, --config NODE.toml, "
                          "or --etcd URL --site ID")
    return coordinator(args, args.etcd, layout.site_prefix(args.site))


def _show(event: Event, as_json: bool) -> None:
    if as_json:
        print(json.dumps(event.__dict__), flush=True)
    else:
        print(event.line(), flush=True)


def _run(args: argparse.Namespace) -> int:
    if args.node:
        if args.config is not None or args.etcd:
            print("hotspare events: give either --node (the site API) or --config/--etcd "
                  "(etcd directly), not both", file=sys.stderr)
            return 2
        return _run_site(args)
    return _run_etcd(args)


def _run_etcd(args: argparse.Namespace) -> int:
    try:
        coord = _coordinator(args)
    except ConfigError as exc:
        print(f"hotspare events: {exc}", file=sys.stderr)
        return 2
    try:
        events, revision = read_events(coord, args.limit)
        for event in events:
            _show(event, args.json)
        if not args.follow:
            return 0
        if not events:
            print(WAITING, file=sys.stderr, flush=True)
        arrived: queue.Queue[WatchBatch] = queue.Queue()
        coord.watch_prefix(layout.EVENTS_PREFIX, arrived.put, from_revision=revision + 1)
        while True:
            batch = arrived.get()
            kvs = batch.snapshot or [e.kv for e in batch.changes if e.type is ChangeType.PUT]
            for kv in kvs:
                try:
                    _show(Event.from_kv(kv), args.json)
                except (ValueError, KeyError, TypeError):
                    continue
    except CoordinationError as exc:
        print(f"hotspare events: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 0
    finally:
        coord.close()


class _Printed:
    """Events already shown, kept for LOOKBACK_US behind the newest, so a re-asked window
    prints nothing twice."""

    def __init__(self) -> None:
        self.newest_us: int | None = None
        self._seen: set[tuple[int, str, str, str | None, str]] = set()

    def new(self, events: list[Event]) -> list[Event]:
        fresh = []
        for event in events:
            key = (event.wall_us, event.node, event.kind, event.server, event.message)
            if key not in self._seen:
                self._seen.add(key)
                fresh.append(event)
        if events:
            self.newest_us = max(self.newest_us or 0, events[-1].wall_us)
        if self.newest_us is not None:
            horizon = self.newest_us - LOOKBACK_US
            self._seen = {k for k in self._seen if k[0] > horizon}
        return fresh

    def after(self) -> int | None:
        return None if self.newest_us is None else max(0, self.newest_us - LOOKBACK_US)


def _run_site(args: argparse.Namespace) -> int:
    from hotspare.cli.cmd_status import node_urls
    from hotspare.client.node_client import NodeApiError
    from hotspare.client.site_client import SiteClient, SiteUnreachable

    if args.token_file is None:
        print("hotspare events: --node needs --token-file", file=sys.stderr)
        return 2
    try:
        token = args.token_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        print(f"hotspare events: cannot read the token file: {exc}", file=sys.stderr)
        return 2
    client = SiteClient(node_urls(args.node), token, timeout=args.timeout)
    printed = _Printed()
    limit = min(args.limit or SITE_LIMIT, SITE_LIMIT)
    warned = False
    first = True
    try:
        while True:
            params: dict[str, Any] = {"limit": limit}
            if printed.after() is not None:
                params["after"] = printed.after()
            try:
                answer = client.get("/site/events", params)
            except (SiteUnreachable, NodeApiError) as exc:
                if not args.follow:
                    print(f"hotspare events: {exc}", file=sys.stderr)
                    return 1
                # Following: a master failover leaves a second or so with no master; say so
                # once and keep asking, as an operator watching a failover expects.
                if not warned:
                    warned = True
                    print(f"hotspare events: {exc}; still trying", file=sys.stderr)
                time.sleep(args.interval)
                continue
            warned = False
            fresh = printed.new([Event.from_dict(raw) for raw in answer.get("events", [])])
            for event in fresh:
                _show(event, args.json)
            if not args.follow:
                return 0
            if first and not fresh:
                print(WAITING, file=sys.stderr, flush=True)
            first = False
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "events", help="show the site's failover events (follows the master with --node)",
        description="Show the site's events, oldest first. With --node (repeatable), from the "
                    "master's site API, found and followed through a failover of the master; "
                    "with --config or --etcd/--site, read from etcd directly.")
    parser.add_argument("--node", action="append", metavar="URL",
                        help="a node's API URL; repeat or separate with commas")
    parser.add_argument("--token-file", type=Path, metavar="FILE", help="with --node")
    parser.add_argument("--config", type=Path, help="a node's TOML file with a [site] table")
    parser.add_argument("--etcd", action="append", metavar="URL", help="etcd endpoint (repeatable)")
    parser.add_argument("--site", help="site id (with --etcd)")
    add_etcd_options(parser)
    parser.add_argument("--limit", type=int, default=None,
                        help=f"only the newest N stored events (with --node at most {SITE_LIMIT})")
    parser.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    parser.add_argument("--interval", type=float, default=1.0,
                        help="with --node --follow: seconds between polls (default: 1)")
    parser.add_argument("--timeout", type=float, default=5.0, help="with --node: seconds")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.set_defaults(handler=_run)

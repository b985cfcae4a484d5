"""`hotspare events [--follow]`: the site's failover events, oldest first, from etcd."""

from __future__ import annotations

import argparse
import json
import queue
import sys
from pathlib import Path

from hotspare.config.load import ConfigError, load_node_config
from hotspare.coordination.errors import CoordinationError
from hotspare.coordination.etcd_adapter import Coordinator
from hotspare.coordination.models import EventType, WatchBatch
from hotspare.failover import keys
from hotspare.failover.events import Event, read_events


def _coordinator(args: argparse.Namespace) -> Coordinator:
    if args.config is not None:
        node = load_node_config(args.config)
        if node.site is None:
            raise ConfigError(f"{args.config}: has no [site] table; pass --etcd and --site")
        return Coordinator(node.site.etcd_endpoints, keys.site_prefix(node.site.id))
    if not args.etcd or not args.site:
        raise ConfigError("name the site: --config NODE.toml, or --etcd URL --site ID")
    return Coordinator(args.etcd, keys.site_prefix(args.site))


def _show(event: Event, as_json: bool) -> None:
    if as_json:
        print(json.dumps(event.__dict__), flush=True)
    else:
        print(event.line(), flush=True)


def _run(args: argparse.Namespace) -> int:
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
        arrived: queue.Queue[WatchBatch] = queue.Queue()
        coord.watch_prefix(keys.EVENTS_PREFIX, arrived.put, from_revision=revision + 1)
        while True:
            batch = arrived.get()
            kvs = batch.snapshot or [e.kv for e in batch.events if e.type is EventType.PUT]
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


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("events", help="show the site's failover events")
    parser.add_argument("--config", type=Path, help="a node's TOML file with a [site] table")
    parser.add_argument("--etcd", action="append", metavar="URL", help="etcd endpoint (repeatable)")
    parser.add_argument("--site", help="site id (with --etcd)")
    parser.add_argument("--limit", type=int, default=None, help="only the newest N stored events")
    parser.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.set_defaults(handler=_run)

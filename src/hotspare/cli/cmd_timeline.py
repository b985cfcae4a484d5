"""`hotspare timeline CAMERA`: what a node holds of one camera, and where video is missing.

The question an operator asks after a failover is "did we lose anything, and who recorded what":
runs with the server that recorded each, and gaps with their length, over a time range.
"""

from __future__ import annotations

import argparse
import json
import ssl
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hotspare.cli.tls_option import add_ca_option, client_verify
from hotspare.timefmt import TimeFormatError, parse_wall_time, wall_now_us, wall_us_to_datetime

if TYPE_CHECKING:  # imported where used: pydantic models cost the CLI's start-up
    from hotspare.wire import SiteTimelineOut, TimelineOut

DEFAULT_LOOKBACK = "-1h"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "timeline",
        help="show a camera's recorded runs and gaps on a node",
        description="Show a camera's recorded runs (who recorded each) and gaps on one node.",
    )
    parser.add_argument("camera", help="camera id")
    parser.add_argument(
        "--from",
        dest="from_",
        default=DEFAULT_LOOKBACK,
        metavar="T",
        help="start: ISO-8601 (local time if no zone), µs since the epoch, "
        "or relative like -10m, -2h, -1d (default: -1h)",
    )
    parser.add_argument("--to", default="now", metavar="T", help="end, same formats (default: now)")
    parser.add_argument(
        "--node", required=True, action="append", metavar="URL",
        help="the node's API, e.g. http://127.0.0.1:8600; with --site, any nodes of the site "
        "(repeatable): the master is found and followed",
    )
    parser.add_argument(
        "--site", action="store_true",
        help="the site's merged timeline from the master: video on the camera's own server and "
        "on any spare (during a takeover or re-insert), each run naming who recorded it",
    )
    parser.add_argument(
        "--token-file",
        required=True,
        type=Path,
        metavar="FILE",
        help="file holding the node's API token",
    )
    parser.add_argument("--json", action="store_true", help="print the API's JSON answer")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds (default: 10)")
    add_ca_option(parser)
    parser.set_defaults(handler=run)


def _local(wall_us: int) -> str:
    return wall_us_to_datetime(wall_us).astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _duration(us: int) -> str:
    seconds = us / 1_000_000
    if seconds < 60:
        return f"{seconds:.3f}s"
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{sec:02d}s" if hours else f"{minutes}m{sec:02d}s"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def render(timeline: TimelineOut | SiteTimelineOut) -> str:
    """The human view of a node's or the site's timeline; times in the operator's local zone."""
    out = [
        f"camera {timeline.camera_id}: {_local(timeline.from_wall_us)} .. "
        f"{_local(timeline.to_wall_us)} (local time)",
        "",
        "runs:",
    ]
    if timeline.runs:
        out.append(
            _table(
                ["start", "end", "duration", "frames", "recorded by", "as", "run"],
                [
                    [
                        _local(r.start_wall_us),
                        _local(r.end_wall_us),
                        _duration(r.end_wall_us - r.start_wall_us),
                        str(r.frame_count),
                        r.recorded_by,
                        r.recorded_as,
                        r.run_id,
                    ]
                    for r in timeline.runs
                ],
            )
        )
    else:
        out.append("  (none)")
    out += ["", "gaps:"]
    if timeline.gaps:
        out.append(
            _table(
                ["start", "end", "length"],
                [
                    [_local(g.start_wall_us), _local(g.end_wall_us), _duration(g.length_us)]
                    for g in timeline.gaps
                ],
            )
        )
    else:
        out.append("  (none)")
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    import httpx

    from hotspare.client.node_client import NodeApiError, NodeClient
    from hotspare.tls import explain

    now = wall_now_us()
    try:
        from_us = parse_wall_time(args.from_, naive_is_local=True, now_us=now)
        to_us = parse_wall_time(args.to, naive_is_local=True, now_us=now)
    except TimeFormatError as exc:
        print(f"hotspare timeline: {exc}", file=sys.stderr)
        return 2
    try:
        token = args.token_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        print(
            f"hotspare timeline: can't read token file {args.token_file}: {exc.strerror}",
            file=sys.stderr,
        )
        return 2
    try:
        verify = client_verify(args)
    except ValueError as exc:
        print(f"hotspare timeline: {exc}", file=sys.stderr)
        return 2
    if args.site:
        return _site_timeline(args, token, from_us, to_us, verify)
    node = args.node[0]
    try:
        with NodeClient(node, token, timeout=args.timeout, verify=verify) as client:
            # a week (or a cut answer) per request, joined: any range the operator names works
            timeline = client.whole_timeline(args.camera, from_us, to_us)
    except NodeApiError as exc:
        # The usual slip: asking the master (the UI's address) for another server's camera.
        hint = ("; add --site to get the site's timeline from the master, whichever node holds "
                "the video" if exc.error == "unknown_camera" else "")
        print(f"hotspare timeline: the node refused: {exc.detail} ({exc.error}){hint}",
              file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:  # say which node, not a traceback
        print(f"hotspare timeline: can't reach {node}: {explain(exc)}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(timeline.model_dump(), indent=2))
    else:
        print(render(timeline))
    return 0


def _site_timeline(args: argparse.Namespace, token: str, from_us: int, to_us: int,
                   verify: ssl.SSLContext) -> int:
    from hotspare.client.node_client import NodeApiError
    from hotspare.client.pages import join_timelines, timeline_pages
    from hotspare.client.site_client import SiteClient, SiteUnreachable
    from hotspare.wire import SiteTimelineOut

    client = SiteClient([u for v in args.node for u in v.split(",") if u], token,
                        timeout=args.timeout, verify=verify)

    def ask(f: int, t: int) -> SiteTimelineOut:
        return SiteTimelineOut.model_validate(
            client.get(f"/site/cameras/{args.camera}/timeline", {"from": f, "to": t}))

    try:
        # a week (or a cut answer) per request, joined: any range the operator names works
        site = join_timelines(timeline_pages(ask, from_us, to_us))
    except NodeApiError as exc:
        print(f"hotspare timeline: the master refused: {exc.detail} ({exc.error})",
              file=sys.stderr)
        return 1
    except SiteUnreachable as exc:
        print(f"hotspare timeline: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(site.model_dump(), indent=2))
        return 0
    print(render(site))
    for source in site.sources:
        if not source.ok:
            print(f"\nwarning: {source.node} did not answer ({source.error}); "
                  "its video is missing from this view", file=sys.stderr)
    return 0

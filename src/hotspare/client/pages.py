"""Reading a long range from routes that answer a bounded one: the pages, and joining them.

The node and site timelines answer at most a week per request, and cut an answer that would
summarise too much (`truncated`, `next_from_wall_us`). A client that wants a month asks window
after window and joins the answers into one, so the CLI shows the same table as for an hour.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from hotspare.wire import MAX_SUMMARY_RANGE_US, GapOut, SiteTimelineOut, TimelineOut

_T = TypeVar("_T", TimelineOut, SiteTimelineOut)


def timeline_pages(ask: Callable[[int, int], _T], from_wall_us: int,
                   to_wall_us: int) -> Iterator[_T]:
    """`ask(from, to)` over [from, to): windows of at most the API's range, each continued from
    its `next_from_wall_us` while truncated. Every answer moves forward, so this ends."""
    start = from_wall_us
    while True:
        end = min(to_wall_us, start + MAX_SUMMARY_RANGE_US)
        page = ask(start, end)
        yield page
        nxt = page.next_from_wall_us
        start = nxt if page.truncated and nxt is not None and nxt > start else end
        if start >= to_wall_us:
            return


def join_timelines(pages: Iterable[_T]) -> _T:
    """One answer for the whole range: runs and gaps in order, a run or gap cut by a page
    boundary joined again (its counts summed: a segment lying across the boundary counts twice).
    Site answers keep every source, partial if any page was."""
    first: _T | None = None
    runs: list = []  # type: ignore[type-arg]
    gaps: list[GapOut] = []
    sources: dict[str, object] = {}
    partial = False
    last_to = 0
    for page in pages:
        if first is None:
            first = page
        last_to = page.to_wall_us
        for run in page.runs:
            prev = runs[-1] if runs else None
            if (prev is not None and prev.run_id == run.run_id
                    and prev.recorded_by == run.recorded_by
                    and prev.end_wall_us == run.start_wall_us):
                runs[-1] = prev.model_copy(update={
                    "end_wall_us": run.end_wall_us,
                    "segment_count": prev.segment_count + run.segment_count,
                    "frame_count": prev.frame_count + run.frame_count,
                })
            else:
                runs.append(run)
        for gap in page.gaps:
            if gaps and gaps[-1].end_wall_us == gap.start_wall_us:
                start = gaps[-1].start_wall_us
                gaps[-1] = GapOut(start_wall_us=start, end_wall_us=gap.end_wall_us,
                                  length_us=gap.end_wall_us - start)
            else:
                gaps.append(gap)
        if isinstance(page, SiteTimelineOut):
            partial = partial or page.partial
            for source in page.sources:
                if source.node not in sources or not source.ok:
                    sources[source.node] = source
    if first is None:
        raise ValueError("no timeline page")
    update: dict[str, object] = {"to_wall_us": last_to, "runs": runs, "gaps": gaps,
                                 "truncated": False, "next_from_wall_us": None}
    if isinstance(first, SiteTimelineOut):
        update.update(sources=list(sources.values()), partial=partial)
    return first.model_copy(update=update)

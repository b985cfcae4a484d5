"""How long the nodes took to hold a new site configuration, and which ones lagged.

A single "every spare" time hides the shape: one spare minutes late and all of them slow read the
same, and a node that never got there makes the whole figure unmeasured. So per group of nodes:
p50 and max over those that got there, and each one that did not, with the revision it still
held and how long it had been behind when the bench stopped waiting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bench.common import median

SLOWEST = 3
"""How many of the slowest nodes that did converge are named."""


def convergence(seen: Mapping[str, tuple[int, int]], names: Sequence[str], revision: int,
                written_us: int, gave_up_us: int) -> dict[str, Any]:
    """`seen`: node -> (revision it holds, wall µs it took it); `written_us`: when the change
    started; `gave_up_us`: when the bench stopped waiting."""
    took = {name: (seen[name][1] - written_us) / 1e6 for name in names
            if name in seen and seen[name][0] >= revision}
    lagging = [{"node": name, "holds_revision": seen[name][0] if name in seen else None,
                "behind_s": round((gave_up_us - written_us) / 1e6, 3)}
               for name in names if name not in took]
    slowest = sorted(took.items(), key=lambda item: item[1], reverse=True)[:SLOWEST]
    p50 = median(list(took.values()))
    return {"n": len(names), "converged": len(took),
            "p50_s": None if p50 is None else round(p50, 3),
            "max_s": round(max(took.values()), 3) if took and not lagging else None,
            "slowest": [{"node": name, "s": round(s, 3)} for name, s in slowest],
            "lagging": lagging}


def describe(group: str, result: Mapping[str, Any]) -> str:
    """One line for the operator reading the run."""
    if result["lagging"]:
        held = ", ".join(f"{lag['node']} (revision {lag['holds_revision']})"
                         for lag in result["lagging"][:10])
        more = len(result["lagging"]) - 10
        return (f"config -> {group}: {result['converged']} of {result['n']} converged "
                f"(p50 {result['p50_s']} s); still behind after "
                f"{result['lagging'][0]['behind_s']} s: {held}"
                + (f" and {more} more" if more > 0 else ""))
    slowest = ", ".join(f"{s['node']} {s['s']} s" for s in result["slowest"])
    return (f"config -> {group}: all {result['n']} converged, p50 {result['p50_s']} s, "
            f"max {result['max_s']} s (slowest: {slowest})")

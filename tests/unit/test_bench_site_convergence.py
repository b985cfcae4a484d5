"""The site bench's configuration convergence: per group p50/max, and the nodes left behind."""

from __future__ import annotations

from bench.site_scale.convergence import convergence, describe

WRITTEN = 1_000_000_000


def test_every_node_there_gives_p50_and_max_and_the_slowest() -> None:
    seen = {"a": (7, WRITTEN + 500_000), "b": (7, WRITTEN + 1_500_000), "c": (8, WRITTEN + 900_000)}
    result = convergence(seen, ["a", "b", "c"], 7, WRITTEN, WRITTEN + 2_000_000)
    assert (result["converged"], result["p50_s"], result["max_s"]) == (3, 0.9, 1.5)
    assert result["slowest"][0] == {"node": "b", "s": 1.5} and result["lagging"] == []
    assert "all 3 converged" in describe("spares", result)


def test_a_node_behind_is_named_with_the_revision_it_holds() -> None:
    seen = {"a": (7, WRITTEN + 500_000), "b": (6, WRITTEN - 9_000_000)}
    result = convergence(seen, ["a", "b", "c"], 7, WRITTEN, WRITTEN + 60_000_000)
    assert result["max_s"] is None  # not every node got there: no maximum to report
    assert result["p50_s"] == 0.5
    assert result["lagging"] == [{"node": "b", "holds_revision": 6, "behind_s": 60.0},
                                 {"node": "c", "holds_revision": None, "behind_s": 60.0}]
    line = describe("spares", result)
    assert "1 of 3 converged" in line and "b (revision 6)" in line and "60.0 s" in line

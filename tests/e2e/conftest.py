"""Every end-to-end scenario ends with an offline store check of every store it made.

The scenarios prove their own claims (frames, claims, events); this adds the schema's promises for
everything they leave on disk: no row without its file, hashes, skip counts against the frames
in the file, wall time against media time, no overlapping runs (`hotspare store check`, read
only). Nodes are gone by then (a scenario kills or stops them in its own teardown), so leftovers
of a crash — an open run, a file without a row — are warnings that reconcile handles at the next
start; only errors, which no crash may cause, fail the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hotspare.store import layout
from hotspare.store.check import check_store


@pytest.fixture(autouse=True)
def stores_pass_check(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[None]:
    yield
    report = request.node.stash.get(_CALL_REPORT, None)
    if report is None or not report.passed:
        return  # the scenario failed on its own: its failure is the one to read
    errors: list[str] = []
    for index in sorted(tmp_path.rglob(layout.INDEX_NAME)):
        result = check_store(index.parent)
        errors += [f"{index.parent.relative_to(tmp_path)}: {f.line()}"
                   for f in result.findings if f.severity == "error" and not f.repaired]
    assert not errors, "hotspare store check found errors after the scenario:\n" + "\n".join(
        errors[:50])


_CALL_REPORT = pytest.StashKey[pytest.TestReport]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Iterator[None] | pytest.TestReport:
    report: pytest.TestReport = yield
    if report.when == "call":
        item.stash[_CALL_REPORT] = report
    return report

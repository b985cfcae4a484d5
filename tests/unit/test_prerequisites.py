"""A missing etcd, GStreamer or chromium skips an end-to-end test on a developer's machine and
fails it under CI (tests.support.prerequisites): CI must never report a pass for tests that did
not run, and a developer must still be able to run what their machine can."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

import tests.support.etcd as support_etcd
from hotspare.coordination.etcd_process import EtcdBinaryNotFound
from tests.support.prerequisites import (
    SKIP_PREFIX,
    in_ci,
    missing_prerequisite,
    prerequisite_skips,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("TRUE", True), ("1", True), ("yes", True), (" true ", True),
     ("", False), ("false", False), ("0", False), (None, False)],
)
def test_in_ci_reads_the_ci_variable(
    monkeypatch: pytest.MonkeyPatch, value: str | None, expected: bool
) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert in_ci() is expected


def test_without_ci_a_missing_prerequisite_skips_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception) as caught:
        missing_prerequisite("etcd not found")
    assert str(caught.value) == SKIP_PREFIX + "etcd not found"


def test_under_ci_a_missing_prerequisite_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception) as caught:
        missing_prerequisite("etcd not found")
    assert "etcd not found" in str(caught.value)
    assert "CI is set" in str(caught.value)


def test_an_explicit_environment_wins_over_the_process_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.skip.Exception):
        missing_prerequisite("no gst", environ={})
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.fail.Exception):
        missing_prerequisite("no gst", environ={"CI": "true"})


@pytest.mark.parametrize(("ci", "outcome"), [(None, pytest.skip.Exception),
                                              ("true", pytest.fail.Exception)])
def test_no_etcd_binary_skips_or_fails(
    monkeypatch: pytest.MonkeyPatch, ci: str | None, outcome: type[BaseException]
) -> None:
    """The etcd fixtures' helper routes through the rule (and so does the camera sim's)."""

    def not_found() -> Path:
        raise EtcdBinaryNotFound("etcd not found on PATH")

    monkeypatch.setattr(support_etcd, "find_etcd_binary", not_found)
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="etcd not found on PATH"):
        support_etcd.require_etcd_binary()


def test_the_banner_counts_only_prerequisite_skips_by_first_line() -> None:
    def skipped(reason: str) -> SimpleNamespace:
        return SimpleNamespace(longrepr=("tests/e2e/test_x.py", 1, f"Skipped: {reason}"))

    reports = [
        skipped(SKIP_PREFIX + "etcd not found\ninstall etcd-server"),
        skipped(SKIP_PREFIX + "etcd not found\ninstall etcd-server"),
        skipped(SKIP_PREFIX + "GStreamer plugins missing"),
        skipped("SIGSTOP is POSIX-only"),
        SimpleNamespace(longrepr=None),
    ]
    assert prerequisite_skips(reports) == {"etcd not found": 2, "GStreamer plugins missing": 1}

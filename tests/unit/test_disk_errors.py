"""The advice for a failed write follows the errno, not one guess for all."""

from __future__ import annotations

import errno

import pytest

from hotspare.store.disk_errors import disk_advice


@pytest.mark.parametrize(("code", "words"), [
    (errno.ENOSPC, "disk is full"), (errno.EROFS, "read-only"), (errno.EIO, "I/O error"),
    (errno.EACCES, "writable by the node's user"), (errno.EDQUOT, "quota"),
])
def test_advice_names_the_cause(code: int, words: str) -> None:
    advice = disk_advice(OSError(code, "x"))
    assert words in advice and advice.endswith("the node retries by itself")


def test_unknown_errors_get_the_general_advice() -> None:
    assert disk_advice(RuntimeError("boom")).startswith("check free space and permissions")
    assert disk_advice(OSError(errno.ENOTTY, "x")).startswith("check free space")

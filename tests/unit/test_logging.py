"""`hotspare node --log-format json` (or $HOTSPARE_LOG_FORMAT) writes one JSON object per line that
a collector can read without a parser of ours; `text` stays the line operators already know."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from hotspare.cli.main import main
from hotspare.logs import FORMAT_ENV, LogFormatError, configure, resolve_format


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """configure() replaces the root logger's handlers (pytest's capture among them) and the
    hooks for uncaught exceptions."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    hooks = sys.excepthook, threading.excepthook
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    sys.excepthook, threading.excepthook = hooks


def _lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_json_lines_carry_time_level_logger_message_and_node() -> None:
    out = io.StringIO()
    configure("INFO", "json", node="rec-1", stream=out)
    logging.getLogger("hotspare.failover.spare").info("claimed %s (token %d)", "rec-2", 11)
    logging.getLogger("hotspare.failover.spare").debug("below the level: not written")
    [line] = _lines(out)
    entry = json.loads(line)
    assert set(entry) == {"time", "level", "logger", "message", "node"}
    assert entry["level"] == "INFO"
    assert entry["logger"] == "hotspare.failover.spare"
    assert entry["message"] == "claimed rec-2 (token 11)"
    assert entry["node"] == "rec-1"
    assert entry["time"].endswith("Z")
    stamp = datetime.fromisoformat(entry["time"].replace("Z", "+00:00"))
    assert stamp.utcoffset() == timedelta(0)
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 60


def test_an_exception_is_a_field_of_its_record_not_lines_of_its_own() -> None:
    out = io.StringIO()
    configure("INFO", "json", node="spare-1", stream=out)
    try:
        raise ValueError("segment 41 is damaged")
    except ValueError:
        logging.getLogger("hotspare.store").exception("import failed:\nsecond line")
    [line] = _lines(out)  # the traceback and the message's newline stay inside one object
    entry = json.loads(line)
    assert entry["message"] == "import failed:\nsecond line"
    assert entry["level"] == "ERROR"
    assert "Traceback" in entry["exception"]
    assert "ValueError: segment 41 is damaged" in entry["exception"]


def test_uncaught_exceptions_become_records_in_json() -> None:
    out = io.StringIO()
    configure("INFO", "json", node="spare-1", stream=out)

    def crash() -> None:
        raise RuntimeError("probe loop died")

    worker = threading.Thread(target=crash, name="probe")
    worker.start()
    worker.join()
    try:
        raise OSError("disk gone")
    except OSError as exc:
        sys.excepthook(OSError, exc, exc.__traceback__)
    sys.excepthook(KeyboardInterrupt, KeyboardInterrupt(), None)
    entries = [json.loads(line) for line in _lines(out)]
    assert [(e["level"], e["message"]) for e in entries] == [
        ("CRITICAL", "uncaught exception in thread probe"),
        ("CRITICAL", "uncaught exception"),
        ("WARNING", "stopped by an interrupt")]
    assert "RuntimeError: probe loop died" in entries[0]["exception"]
    assert "OSError: disk gone" in entries[1]["exception"]
    configure("INFO", "text", stream=io.StringIO())  # text gives Python's own print back
    assert sys.excepthook is sys.__excepthook__


def test_only_the_fixed_fields_are_written() -> None:
    """A value passed as `extra` (where a careless caller might put a camera's credentials) is
    not copied into the record: what is logged is the message the code wrote."""
    out = io.StringIO()
    configure("INFO", "json", node="rec-1", stream=out)
    logging.getLogger("hotspare.recorder").warning(
        "camera cam-1 connecting", extra={"url": "rtsp://admin:hunter2@10.0.0.5/stream"})
    assert "hunter2" not in out.getvalue()
    assert set(json.loads(_lines(out)[0])) == {"time", "level", "logger", "message", "node"}


def test_text_format_is_the_familiar_line() -> None:
    out = io.StringIO()
    configure("INFO", "text", node="rec-1", stream=out)
    logging.getLogger("hotspare.node").warning("retention pass failed")
    [line] = _lines(out)
    assert line.endswith(" WARNING hotspare.node: retention pass failed")
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_configuring_again_replaces_the_handler_rather_than_doubling_lines() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure("INFO", "text", stream=first)
    configure("INFO", "json", node="rec-1", stream=second)
    logging.getLogger("hotspare").info("once")
    assert first.getvalue() == ""
    assert len(_lines(second)) == 1


def test_format_from_option_then_environment_then_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FORMAT_ENV, raising=False)
    assert resolve_format(None) == "text"
    monkeypatch.setenv(FORMAT_ENV, "JSON")
    assert resolve_format(None) == "json"
    assert resolve_format("text") == "text"  # the option wins
    monkeypatch.setenv(FORMAT_ENV, "yaml")
    with pytest.raises(LogFormatError, match=f"{FORMAT_ENV}='yaml'.*text, json"):
        resolve_format(None)


def test_node_refuses_an_unknown_format(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["node", "--config", "node.toml", "--log-format", "yaml"])
    assert exited.value.code == 2
    assert "invalid choice: 'yaml'" in capsys.readouterr().err

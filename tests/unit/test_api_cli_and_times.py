"""Time formats shared by API and CLI, and the `hotspare timeline` command end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hotspare.cli import cmd_timeline
from hotspare.cli.main import main
from hotspare.client.node_client import NodeClient
from hotspare.timefmt import TimeFormatError, format_wall_us, parse_wall_time
from tests.support.api_node import CAMERA, SERVER, T0, TOKEN, Node


def test_parse_wall_time_formats() -> None:
    assert parse_wall_time(str(T0)) == T0
    assert parse_wall_time("2025-11-25T21:00:00Z") == T0
    assert parse_wall_time("2025-11-25T22:00:00.5+01:00") == T0 + 500_000
    assert parse_wall_time("-10m", now_us=T0) == T0 - 600_000_000
    assert parse_wall_time("-1.5h", now_us=T0) == T0 - 5_400_000_000
    assert parse_wall_time("now", now_us=T0) == T0
    assert format_wall_us(T0 + 1_000) == "2025-11-25T21:00:00.001Z"
    for bad in ["", "-10m", "2025-11-25T21:00:00", "tomorrow", "1" * 19, "0001-01-01T00:00Z"]:
        with pytest.raises(TimeFormatError):
            parse_wall_time(bad)


def test_unicode_digits_are_not_a_time() -> None:
    """Found by fuzzing: '²'.isdigit() is true, int('²') raises, and the API answered 500."""
    for bad in ["²", "٣", "１２３", "1²"]:
        with pytest.raises(TimeFormatError):
            parse_wall_time(bad)


def test_timeline_command_table_and_json(
    node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n", encoding="utf-8")

    def in_process(
        base_url: str, token: str, timeout: float = 10.0, verify: object = True
    ) -> NodeClient:
        return NodeClient(base_url, token, timeout, http=node.client)

    monkeypatch.setattr("hotspare.client.node_client.NodeClient", in_process)
    args = [
        "timeline",
        CAMERA,
        "--from",
        str(T0 - 1_000_000),
        "--to",
        "2025-11-25T21:00:10Z",
        "--node",
        "http://node.test",
        "--token-file",
        str(token_file),
    ]
    assert main(args) == 0
    table = capsys.readouterr().out
    assert "runs:" in table and "gaps:" in table and SERVER in table
    assert "1.200s" in table and "3.800s" in table and "30" in table

    assert main([*args, "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert [r["frame_count"] for r in body["runs"]] == [30, 20]
    assert len(body["gaps"]) == 3


def test_timeline_command_errors_are_one_line(
    node: Node, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("wrong", encoding="utf-8")
    base = ["timeline", CAMERA, "--node", "http://127.0.0.1:9", "--token-file", str(token_file)]
    assert main([*base, "--from", "yesterday"]) == 2
    assert "can't read time" in capsys.readouterr().err
    assert main([*base[:4], "--token-file", str(tmp_path / "missing")]) == 2
    assert main([*base, "--timeout", "0.5"]) == 1
    assert "can't reach" in capsys.readouterr().err


def test_render_handles_empty_timeline() -> None:
    from hotspare.wire import TimelineOut

    text = cmd_timeline.render(
        TimelineOut(camera_id=CAMERA, from_wall_us=T0, to_wall_us=T0 + 1, runs=[], gaps=[])
    )
    assert text.count("(none)") == 2


def test_timeline_of_another_servers_camera_suggests_site(
    node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's slip: asking the master (the UI's address) for rec-2's camera."""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n", encoding="utf-8")

    def in_process(
        base_url: str, token: str, timeout: float = 10.0, verify: object = True
    ) -> NodeClient:
        return NodeClient(base_url, token, timeout, http=node.client)

    monkeypatch.setattr("hotspare.client.node_client.NodeClient", in_process)
    args = ["timeline", "rec-2-cam-1", "--node", "http://node.test", "--token-file",
            str(token_file)]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "(unknown_camera)" in err[0] and "add --site" in err[0], err


def test_timeline_command_over_a_month_asks_a_week_at_a_time(
    node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The node refuses more than 7 d per timeline (range_too_large); the command pages."""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n", encoding="utf-8")
    asked: list[str] = []

    def in_process(
        base_url: str, token: str, timeout: float = 10.0, verify: object = True
    ) -> NodeClient:
        node.client.event_hooks["request"] = [lambda r: asked.append(str(r.url))]
        return NodeClient(base_url, token, timeout, http=node.client)

    monkeypatch.setattr("hotspare.client.node_client.NodeClient", in_process)
    day = 86_400_000_000
    args = ["timeline", CAMERA, "--from", str(T0 - 20 * day), "--to", str(T0 + 10 * day),
            "--node", "http://node.test", "--token-file", str(token_file), "--json"]
    assert main(args) == 0
    body = json.loads(capsys.readouterr().out)
    assert len(asked) == 5  # 30 days: 7 + 7 + 7 + 7 + 2
    assert [r["frame_count"] for r in body["runs"]] == [30, 20]
    assert body["from_wall_us"] == T0 - 20 * day and body["to_wall_us"] == T0 + 10 * day
    assert [g["start_wall_us"] for g in body["gaps"]] == [T0 - 20 * day, T0 + 1_200_000,
                                                          T0 + 5_800_000]

"""The command line reads `--from -5m` as typed, and every sub-command is discovered."""

from __future__ import annotations

import pytest

from hotspare.cli.main import build_parser, join_relative_times


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["timeline", "c", "--from", "-5m"], ["timeline", "c", "--from=-5m"]),
        (["timeline", "c", "--from", "-1.5h", "--to", "-10s"],
         ["timeline", "c", "--from=-1.5h", "--to=-10s"]),
        (["timeline", "c", "--from", "-x"], ["timeline", "c", "--from", "-x"]),  # not a time
        (["timeline", "-5m"], ["timeline", "-5m"]),  # not after a time option
    ],
)
def test_relative_times_are_glued_to_their_option(argv: list[str], expected: list[str]) -> None:
    assert join_relative_times(argv) == expected


def test_every_command_is_registered() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert commands is not None
    for name in ("node", "demo", "camera-sim", "config", "site", "licence", "timeline",
                 "events", "status", "protection"):
        assert name in commands, name

"""Configurations that used to pass `config check` and then broke the node are refused up front,
each in one line naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotspare.config.load import ConfigError, load_node_config

NODE = """
name = "rec-1"
data_dir = "data"
[api]
{token_line}
[retention]
max_age_days = {max_age}
[[cameras]]
id = "cam-1"
url = "rtsp://127.0.0.1:8554/cam-1"
"""


def _load(tmp_path: Path, token_line: str, max_age: str = "30") -> None:
    path = tmp_path / "node.toml"
    path.write_text(NODE.format(token_line=token_line, max_age=max_age), encoding="utf-8")
    load_node_config(path)


@pytest.mark.parametrize("token", ["", "x", "fifteen-chars-x", "has a space in the middle!"])
def test_a_weak_node_token_is_refused_naming_the_field(tmp_path: Path, token: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, f'token = "{token}"')
    text = str(caught.value)
    assert "api.token" in text
    assert "character" in text or "white space" in text
    if token:
        assert token not in text  # the refused secret is not echoed


def test_a_missing_token_file_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, 'token_file = "missing.token"')
    text = str(caught.value)
    assert "api.token_file" in text and "no such file" in text
    assert "\n" not in text


def test_a_binary_or_short_token_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bin.token").write_bytes(b"\xff\xfe\x00token")
    with pytest.raises(ConfigError, match="not a text file"):
        _load(tmp_path, 'token_file = "bin.token"')
    (tmp_path / "short.token").write_text("abc\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"api\.token_file.*3 character"):
        _load(tmp_path, 'token_file = "short.token"')
    (tmp_path / "good.token").write_text("a-long-enough-random-token\n", encoding="utf-8")
    _load(tmp_path, 'token_file = "good.token"')


def test_an_absurd_retention_age_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"retention\.max_age_days"):
        _load(tmp_path, 'token = "a-long-enough-random-token"', max_age="1e308")
    _load(tmp_path, 'token = "a-long-enough-random-token"', max_age="3650")

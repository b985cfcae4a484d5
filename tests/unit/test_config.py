"""A wrong node configuration is refused, naming each bad field, before anything starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hotspare.config.load import ConfigError, load_node_config

GOOD = """
name = "rec-1"
data_dir = "data"
[api]
token = "secret-token"
[[cameras]]
id = "cam-1"
url = "rtsp://127.0.0.1:8554/cam-1"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_good_config_resolves_relative_paths(tmp_path: Path) -> None:
    config = load_node_config(write(tmp_path, GOOD))
    assert config.data_dir == (tmp_path / "data").resolve()
    assert config.cameras[0].transport == "tcp"
    assert config.recording.segment_seconds == 4.0


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        (
            (
                'url = "rtsp://127.0.0.1:8554/cam-1"',
                'url = "rtsp://127.0.0.1:8554/cam-1"\nfps = 25',
            ),
            "cameras.0.fps",
            "unknown field",
        ),
        (
            ('url = "rtsp://127.0.0.1:8554/cam-1"', 'url = "http://127.0.0.1/cam-1"'),
            "cameras.0.url",
            "must start with rtsp://",
        ),
        (('id = "cam-1"\n', ""), "cameras.0.id", "required field is missing"),
        (('id = "cam-1"', 'id = "../etc"'), "cameras.0.id", "should match pattern"),
        (
            ('url = "rtsp://127.0.0.1:8554/cam-1"', 'url = "rtsp://admin:pw@10.0.0.1/x"'),
            "cameras.0.url",
            "must not carry a password",
        ),
        (('token = "secret-token"', ""), "api", "set `token` or `token_file`"),
        (("[api]", "segment_seconds = 4\n[api]"), "segment_seconds", "unknown field"),
    ],
)
def test_bad_config_names_the_field(
    tmp_path: Path, change: tuple[str, str], field: str, reason: str
) -> None:
    old, new = change
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(ConfigError) as caught:
        load_node_config(path)
    message = str(caught.value)
    assert f"  {field}: " in message, message
    assert reason in message, message
    assert "pw@" not in message


def test_duplicate_camera_ids_refused(tmp_path: Path) -> None:
    text = GOOD + '\n[[cameras]]\nid = "cam-1"\nurl = "rtsp://127.0.0.1:8554/other"\n'
    with pytest.raises(ConfigError, match="camera id 'cam-1' appears twice"):
        load_node_config(write(tmp_path, text))


def test_not_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_node_config(write(tmp_path, "name = "))


def test_node_refuses_to_start_and_writes_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('id = "cam-1"', 'id = "Cam 1"'))
    result = subprocess.run(
        [sys.executable, "-m", "hotspare", "node", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "refusing to start" in result.stderr
    assert "cameras.0.id" in result.stderr
    assert not (tmp_path / "data").exists()


def test_config_check_prints_summary_without_secrets(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + 'username = "admin"\npassword = "hunter2"\n')
    result = subprocess.run(
        [sys.executable, "-m", "hotspare", "config", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert '"cam-1"' in result.stdout
    assert "hunter2" not in result.stdout

"""Secrets never reach what people see, and hostile input is refused with a clear reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from hotspare.config.models import ApiSettings, CameraConfig, NodeConfig
from hotspare.node.runtime import describe
from hotspare.recorder.source import CameraSource
from hotspare.redact import redact_url
from hotspare.site.licences import LicenceRefused, RefusalReason, read_unverified


@pytest.mark.parametrize(("url", "shown"), [
    ("rtsp://cam.example:554/live?user=admin&password=hunter2",
     "rtsp://cam.example:554/live?user=admin&password=***"),
    ("rtsp://admin:hunter2@10.0.0.5/h264", "rtsp://10.0.0.5/h264"),
    ("rtsp://[fe80::1]:8554/s?PWD=x&channel=1", "rtsp://[fe80::1]:8554/s?PWD=***&channel=1"),
    ("rtsp://cam/stream?channel=1&subtype=0", "rtsp://cam/stream?channel=1&subtype=0"),
    ("rtsp://a:b@cam:99999/bad-port", "rtsp://***"),
])
def test_redact_url_hides_userinfo_and_secret_query_values(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert "hunter2" not in redact_url(url)


def test_a_cameras_display_url_never_carries_a_query_password() -> None:
    camera = CameraConfig(id="cam-1", url="rtsp://cam.example/live?password=hunter2&ch=1")
    source = CameraSource.from_config(camera)
    assert "hunter2" not in source.display_url
    assert "hunter2" not in repr(source)


def test_a_config_error_does_not_echo_a_password_from_the_url() -> None:
    with pytest.raises(ValidationError) as caught:
        CameraConfig(id="cam-1", url="http://admin:hunter2@cam.example/live")
    messages = " ".join(e["msg"] for e in caught.value.errors())
    assert "rtsp://" in messages
    assert "hunter2" not in messages


def test_a_deeply_nested_licence_is_refused_as_malformed_not_a_crash() -> None:
    nested = "[" * 30_000 + "]" * 30_000  # under the size limit, far over the parser's depth
    with pytest.raises(LicenceRefused) as caught:
        read_unverified(nested, "evil.licence")
    assert caught.value.reason is RefusalReason.MALFORMED
    assert "nested too deeply" in str(caught.value)


def test_an_oversized_licence_is_refused_unread() -> None:
    with pytest.raises(LicenceRefused) as caught:
        read_unverified(" " * 200_000 + "{}", "huge.licence")
    assert caught.value.reason is RefusalReason.MALFORMED
    assert "at most" in str(caught.value)


def test_config_check_summary_hides_camera_passwords(tmp_path: Path) -> None:
    """`hotspare config check` prints `describe()`: an operator pastes it into tickets."""
    config = NodeConfig(
        name="rec-1", data_dir=tmp_path,
        api=ApiSettings(token=SecretStr("a-long-enough-node-token")),
        cameras=[CameraConfig(id="cam-1", url="rtsp://admin@cam.example/live", password="hunter2"),
                 CameraConfig(id="cam-2", url="rtsp://cam.example/live?password=hunter3&ch=1")])
    shown = json.dumps(describe(config))
    assert "hunter2" not in shown and "hunter3" not in shown
    assert "cam.example/live" in shown

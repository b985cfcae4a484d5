"""The site secret that seals camera passwords in etcd (issue 11, item 5): sealing, opening,
rotation, the file, what `site apply` stores, and what a node without the secret says."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest

from hotspare.cli.main import main
from hotspare.config.models import CameraConfig
from hotspare.coordination.etcd_adapter import Coordinator
from hotspare.recorder.source import CameraSource, SourceError
from hotspare.signing_keys import KeyFileError
from hotspare.site.load import SiteConfigError
from hotspare.site_secret import (
    SITE_SECRET_FILE,
    SecretError,
    create_site_secret,
    install_site_secret,
    read_site_secret,
    reveal_password,
)
from hotspare.sitestate import applied, layout
from tests.support.fake_site_state import FakeEtcd
from tests.support.site_api import CAMERA_PASSWORD, site_config
from tests.unit.test_site_cli import EXAMPLE


@pytest.fixture
def no_installed_secret() -> Iterator[None]:
    install_site_secret(None)
    yield
    install_site_secret(None)


def test_a_password_opens_only_for_its_camera_with_a_key_of_the_file(tmp_path: Path) -> None:
    secret = create_site_secret(tmp_path / SITE_SECRET_FILE)
    sealed = secret.seal("cam-1", CAMERA_PASSWORD)
    assert CAMERA_PASSWORD not in sealed and sealed.startswith(f"sealed:v1:{secret.current_id}:")
    assert sealed != secret.seal("cam-1", CAMERA_PASSWORD)  # a fresh nonce each time
    assert secret.open("cam-1", sealed) == CAMERA_PASSWORD
    with pytest.raises(SecretError, match=r"cam-2.*does not open"):  # moved to another camera
        secret.open("cam-2", sealed)
    with pytest.raises(SecretError, match=r"cam-1.*damaged"):
        secret.open("cam-1", sealed[:-20])
    other = create_site_secret(tmp_path / "other" / SITE_SECRET_FILE)
    with pytest.raises(SecretError) as refused:
        other.open("cam-1", sealed)
    assert secret.current_id in str(refused.value) and other.current_id in str(refused.value)
    assert SITE_SECRET_FILE in str(refused.value)


def test_rotation_seals_with_the_new_key_and_still_opens_the_old(tmp_path: Path) -> None:
    path = tmp_path / SITE_SECRET_FILE
    old = create_site_secret(path)
    sealed_old = old.seal("cam-1", "pw")
    rotated = create_site_secret(path, rotate=True)
    assert rotated.current_id != old.current_id and len(rotated.keys) == 2
    assert rotated.open("cam-1", sealed_old) == "pw"
    assert rotated.seal("cam-1", "pw").startswith(f"sealed:v1:{rotated.current_id}:")
    if os.name == "posix":
        assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(KeyFileError, match="already exists"):
        create_site_secret(path)
    assert read_site_secret(path) == rotated


def test_a_damaged_secret_file_is_named_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / SITE_SECRET_FILE
    path.write_text("# site secret\nhotspare-site-secret-v1:c2hvcnQ=\n", encoding="ascii")
    with pytest.raises(KeyFileError, match=r"line 2: not a site secret key"):
        read_site_secret(path)
    path.write_text("# nothing\n", encoding="ascii")
    with pytest.raises(KeyFileError, match="holds no key"):
        read_site_secret(path)


def test_apply_stores_only_sealed_passwords(tmp_path: Path) -> None:
    secret = create_site_secret(tmp_path / SITE_SECRET_FILE)
    etcd = FakeEtcd()
    applied.apply(cast(Coordinator, etcd), site_config(), secret)
    stored = etcd.kvs[layout.SITE_CONFIG].value
    assert isinstance(stored, bytes) and stored.startswith(applied.GZIP_MAGIC)
    text = applied.document_text(stored)
    raw = text.decode() if isinstance(text, bytes) else text
    assert CAMERA_PASSWORD not in raw and "sealed:v1:" in raw
    read = applied.read(cast(Coordinator, etcd))
    assert read is not None
    camera = read.config.recording_server("rec-2").cameras[0]  # type: ignore[union-attr]
    assert camera.password is not None
    assert secret.open("cam-1", camera.password.get_secret_value()) == CAMERA_PASSWORD


def test_apply_without_a_secret_names_the_camera_and_writes_nothing() -> None:
    etcd = FakeEtcd()
    with pytest.raises(SiteConfigError) as refused:
        applied.apply(cast(Coordinator, etcd), site_config(), None)
    assert "recording_servers.rec-2.cameras.cam-1.password" in str(refused.value)
    assert "hotspare pki site-secret" in str(refused.value)
    assert CAMERA_PASSWORD not in str(refused.value)
    assert layout.SITE_CONFIG not in etcd.kvs


def test_a_node_without_the_secret_says_which_camera_and_what_to_do(
        tmp_path: Path, no_installed_secret: None) -> None:
    secret = create_site_secret(tmp_path / SITE_SECRET_FILE)
    camera = CameraConfig.model_validate({
        "id": "cam-1", "url": "rtsp://10.0.0.8:554/s", "username": "admin",
        "password": secret.seal("cam-1", CAMERA_PASSWORD)})
    source = CameraSource.from_config(camera)
    install_site_secret(None, tmp_path / "node" / SITE_SECRET_FILE)
    with pytest.raises(SourceError) as failed:
        source.open(1.0)
    message = str(failed.value)
    assert failed.value.kind == "site_secret"
    assert "camera cam-1" in message and "node.toml" in message and "restart" in message
    assert str(tmp_path / "node" / SITE_SECRET_FILE) in message
    assert CAMERA_PASSWORD not in message and "sealed:v1" not in message
    install_site_secret(secret)
    assert "admin:" + CAMERA_PASSWORD in source._secret_url
    assert reveal_password("cam-1", "plain-in-a-standalone-node") == "plain-in-a-standalone-node"


def test_a_secret_url_query_value_is_sealed_too_and_opened_at_the_connect(
        tmp_path: Path, no_installed_secret: None) -> None:
    """Many cameras take their credentials only as `?user=…&password=…`."""
    secret = create_site_secret(tmp_path / SITE_SECRET_FILE)
    url = f"rtsp://10.0.0.7:554/live?user=admin&password={CAMERA_PASSWORD}&channel=1"
    site = site_config()
    rec1 = site.recording_servers[0]
    camera = rec1.cameras[0].model_copy(update={"url": url})
    site = site.model_copy(update={"recording_servers": [
        rec1.model_copy(update={"cameras": [camera]}), *site.recording_servers[1:]]})
    with pytest.raises(SiteConfigError, match=r"cameras\.cam-m\.url"):
        applied.seal_passwords(site, None)
    once = applied.seal_passwords(site, secret)
    sealed = once.recording_servers[0].cameras[0].url
    assert CAMERA_PASSWORD not in sealed and "user=admin" in sealed and "channel=1" in sealed
    # a sealed value is left as it is (applying etcd's own copy again seals nothing twice)
    assert applied.seal_passwords(once, secret).recording_servers[0].cameras[0].url == sealed
    source = CameraSource.from_config(camera.model_copy(update={"url": sealed}))
    with pytest.raises(SourceError, match="camera cam-m"):
        source.open(1.0)
    install_site_secret(secret)
    assert f"password={CAMERA_PASSWORD}" in source._secret_url
    assert CAMERA_PASSWORD not in source.display_url
    assert source.scrub(f"failed: {source._secret_url}") == f"failed: {source.display_url}"


def test_the_commands_make_the_secret_and_apply_refuses_a_password_without_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pki", "site-secret", str(tmp_path / "pki")]) == 0
    assert main(["pki", "site-secret", str(tmp_path / "pki")]) == 2  # never overwritten
    assert "already exists" in capsys.readouterr().err
    site = tmp_path / "site.toml"
    shutil.copy(EXAMPLE, site)  # its camera "gate" has a password; no site-secret.key beside it
    # refused before etcd is even contacted (the endpoint below answers nothing)
    assert main(["site", "apply", str(site), "--etcd", "http://127.0.0.1:9",
                 "--etcd-insecure-plaintext"]) == 1
    err = capsys.readouterr().err
    assert "cameras.gate.password" in err and "hotspare pki site-secret" in err
    assert "change-me" not in err
    assert main(["site", "apply", str(site), "--site-secret", str(tmp_path / "nothing.key"),
                 "--etcd", "http://127.0.0.1:9", "--etcd-insecure-plaintext"]) == 1
    assert "--site-secret" in capsys.readouterr().err

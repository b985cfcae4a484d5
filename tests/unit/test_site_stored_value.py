"""The site configuration's stored form in etcd: gzip-compressed JSON, read back exactly; a value
stored plain (before compression) still read; a damaged or over-large value refused by name; and a
site too large for one etcd request refused before anything is written, saying what to do."""

from __future__ import annotations

import argparse
import gzip
import time
from typing import cast

import pytest

from hotspare.cli import cmd_site_apply
from hotspare.config.models import CameraConfig
from hotspare.coordination.etcd_adapter import Coordinator
from hotspare.site.load import SiteConfigError
from hotspare.site.model import SiteConfig
from hotspare.site_secret import SiteSecret
from hotspare.sitestate import applied, layout
from tests.support.fake_site_state import FakeEtcd
from tests.support.site_api import site_config as example_site

SECRET = SiteSecret((bytes(range(32)),))
ARGS = argparse.Namespace(drop_refused_licences=False, strict=False)
ETCD_DEFAULT_LIMIT = 1_572_864


def big_site(servers: int, cameras_each: int, *, passwords: bool = True,
             max_request_bytes: int | None = None) -> SiteConfig:
    """`servers` × `cameras_each` cameras named and addressed like a real site's, each with a
    sealed password (random bytes: the part of the document gzip cannot shrink)."""
    base = example_site()
    template = base.recording_servers[1]
    recording = []
    for s in range(servers):
        name = f"rec-{s + 1:03d}"
        cameras = [CameraConfig(id=f"{name}-cam-{c + 1:02d}",
                                url=f"rtsp://10.{s // 250}.{s % 250}.{c + 10}:554/Streaming/"
                                    "Channels/101",
                                username="admin" if passwords else None,
                                password=f"pw-{s}-{c}-x9" if passwords else None)
                   for c in range(cameras_each)]
        recording.append(template.model_copy(update={
            "name": name, "address": f"10.{s // 250}.{s % 250}.2:8600", "cameras": cameras,
            "role": base.recording_servers[0].role if s == 0 else template.role}))
    update: dict[str, object] = {"recording_servers": recording}
    if max_request_bytes is not None:
        update["etcd"] = base.etcd.model_copy(update={"max_request_bytes": max_request_bytes})
    return applied.seal_passwords(base.model_copy(update=update), SECRET if passwords else None)


def test_the_stored_value_is_compressed_deterministic_and_reads_back_exactly() -> None:
    site = applied.seal_passwords(example_site(), SECRET)
    value = applied.stored_value(site)
    assert value.startswith(applied.GZIP_MAGIC)
    assert applied.stored_value(site) == value  # an apply recognises its own write by its bytes
    assert applied.decode(value) == site
    assert applied.encode(applied.decode(value)) == applied.encode(site)


def test_a_value_stored_plain_before_compression_is_still_read() -> None:
    site = applied.seal_passwords(example_site(), SECRET)
    plain = applied.encode(site).encode("utf-8")
    assert applied.decode(plain) == site


@pytest.mark.parametrize("damage", ["flipped", "cut"])
def test_a_damaged_value_is_refused_by_name(damage: str) -> None:
    value = bytearray(applied.stored_value(applied.seal_passwords(example_site(), SECRET)))
    if damage == "flipped":
        value[len(value) // 2] ^= 0xFF
    else:
        del value[len(value) // 2:]
    with pytest.raises(SiteConfigError) as refused:
        applied.decode(bytes(value))
    assert str(refused.value).startswith("etcd config/site: the stored configuration is damaged")
    assert "apply the site again with `hotspare site apply`" in str(refused.value)


def test_a_value_expanding_past_the_cap_is_refused_without_expanding_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(applied, "MAX_DOCUMENT_BYTES", 1_000_000)
    bomb = gzip.compress(b" " * 50_000_000, mtime=0)  # 50 MB of blanks in ~50 kB
    with pytest.raises(SiteConfigError) as refused:
        applied.decode(bomb)
    assert "expands to more than 1,000,000 bytes" in str(refused.value)


def test_ten_thousand_cameras_with_sealed_passwords_fit_one_etcd_request() -> None:
    """200 servers × 50 cameras, the site-scale benchmark's size. As plain JSON (stored so
    before) it was 2.56 MB with sealed passwords, past etcd's default 1.5 MiB: such a site could
    not be applied. Compressed: 0.49 MB (5.2×)."""
    site = big_site(200, 50)
    started = time.perf_counter()
    value = applied.stored_value(site)
    compress_s = time.perf_counter() - started
    started = time.perf_counter()
    back = applied.decode(value)
    decode_s = time.perf_counter() - started
    plain = len(applied.encode(site).encode("utf-8"))
    print(f"10 000 cameras with sealed passwords: JSON {plain:,} bytes, stored {len(value):,} "
          f"bytes ({plain / len(value):.1f}x); compress {compress_s * 1000:.0f} ms, "
          f"decompress + validate {decode_s * 1000:.0f} ms")
    assert back == site
    assert len(value) < ETCD_DEFAULT_LIMIT // 2, len(value)
    applied.check_fits(value, site)


def test_a_site_too_large_for_one_request_is_refused_before_anything_is_written() -> None:
    site = big_site(40, 50, max_request_bytes=65_536)
    etcd = FakeEtcd()
    with pytest.raises(SiteConfigError) as refused:
        applied.apply(cast(Coordinator, etcd), site, SECRET)
    message = str(refused.value)
    assert message.startswith("etcd.max_request_bytes: ")
    assert "40 recording servers, 2000 cameras" in message
    assert "--max-request-bytes" in message and "nothing was written" in message
    assert layout.SITE_CONFIG not in etcd.kvs


def test_site_apply_refuses_a_site_too_large_and_leaves_the_stored_one() -> None:
    """(`site apply` prints the error and exits 3, as for any refused configuration.)"""
    etcd = FakeEtcd()
    applied.apply(cast(Coordinator, etcd), applied.seal_passwords(example_site(), SECRET), SECRET)
    before = etcd.get(layout.SITE_CONFIG)
    assert before is not None
    with pytest.raises(SiteConfigError, match=r"etcd\.max_request_bytes: .* 2000 cameras"):
        cmd_site_apply._apply_with(ARGS, big_site(40, 50, max_request_bytes=65_536), [],
                                   cast(Coordinator, etcd))
    assert etcd.get(layout.SITE_CONFIG) == before

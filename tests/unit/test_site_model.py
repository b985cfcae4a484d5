"""Site configuration: validation errors name the field; relative paths resolve to the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotspare.site.load import SiteConfigError, load_site_config, parse_site_config
from hotspare.site.model import Platform, Role

BASE = """
[site]
id = "harbour"

[etcd]
endpoints = ["http://127.0.0.1:2379"]

[[recording_servers]]
name = "rec-1"
address = "10.0.0.21:8600"
role = "master"

[[recording_servers.cameras]]
id = "gate"
url = "rtsp://10.0.1.10/s"

[[recording_servers]]
name = "rec-2"
address = "[::1]:8601"
platform = "netbsd"
frame_grabber_inputs = 2

[[recording_servers.cameras]]
id = "dock"
url = "rtsp://10.0.1.11/s"

[[failover_servers]]
name = "spare-a"
address = "10.0.0.31:8600"
"""


def test_valid_site() -> None:
    site = parse_site_config(BASE, "site.toml")
    assert site.master.name == "rec-1"
    assert site.recording_servers[1].role is Role.RECORDING
    assert site.recording_servers[1].platform is Platform.NETBSD
    assert site.failover_server("spare-a") is not None
    assert site.recording_server("nobody") is None


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            'role = "master"',
            'role = "recording"',
            "recording_servers: Value error, exactly one recording server must have role",
        ),
        (
            'address = "[::1]:8601"',
            'address = "[::1]:8601"\nrole = "master"',
            "exactly one recording server",
        ),
        ('name = "rec-2"', 'name = "rec-1"', "name 'rec-1' is used by servers [0] and [1]"),
        ('id = "dock"', 'id = "gate"', "camera id 'gate' appears on 'rec-1' and on 'rec-2'"),
        (
            'name = "spare-a"',
            'name = "rec-2"',
            "failover_servers: Value error, [0] name 'rec-2' is already",
        ),
        (
            "frame_grabber_inputs = 2",
            "frame_grabber_inputs = -1",
            "recording_servers.1.frame_grabber_inputs:",
        ),
        ('platform = "netbsd"', 'platform = "beos"', "recording_servers.1.platform:"),
        (
            'address = "10.0.0.31:8600"',
            'address = "10.0.0.31"',
            "failover_servers.0.address: Value error, must be host:port",
        ),
        (
            'address = "10.0.0.31:8600"',
            'adress = "10.0.0.31:8600"',
            "failover_servers.0.adress: unknown field (check its spelling; see docs/site-config",
        ),
        ('id = "harbour"', 'id = "Harbour Depot"', "site.id:"),
        ('endpoints = ["http://127.0.0.1:2379"]', "endpoints = []", "etcd.endpoints:"),
        (
            'endpoints = ["http://127.0.0.1:2379"]',
            'endpoints = ["127.0.0.1:2379"]',
            "etcd.endpoints: Value error",
        ),
        (
            'url = "rtsp://10.0.1.11/s"',
            'url = "http://10.0.1.11/s"',
            "recording_servers.1.cameras.0.url:",
        ),
        ('[site]\nid = "harbour"', '[site]\nname = "x"', "site.id: required field is missing"),
    ],
)
def test_errors_name_the_field(old: str, new: str, expected: str) -> None:
    assert old in BASE
    with pytest.raises(SiteConfigError) as caught:
        parse_site_config(BASE.replace(old, new, 1), "site.toml")
    assert str(caught.value).startswith("site.toml: ")
    assert expected in str(caught.value)


def test_licence_and_key_need_exactly_one_source() -> None:
    text = (
        BASE + '\n[[licences]]\nfile = "a.lic"\ntext = "{}"\n\n[[trusted_keys]]\ncomment = "none"\n'
    )
    with pytest.raises(SiteConfigError) as caught:
        parse_site_config(text, "site.toml")
    assert "licences.0: Value error, set exactly one of `file` and `text`" in str(caught.value)
    assert "trusted_keys.0: Value error, set exactly one of `file` and `public_key`" in str(
        caught.value
    )


def test_not_toml() -> None:
    with pytest.raises(SiteConfigError, match="not valid TOML"):
        parse_site_config("[site", "site.toml")


def test_relative_paths_resolve_against_the_file(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "site.toml"
    path.parent.mkdir()
    path.write_text(
        BASE + '\n[[licences]]\nfile = "lic/a.lic"\n\n[[trusted_keys]]\nfile = "k.pub"\n'
    )
    site = load_site_config(path)
    assert site.licences[0].file == (tmp_path / "conf" / "lic" / "a.lic").resolve()
    assert site.trusted_keys[0].file == (tmp_path / "conf" / "k.pub").resolve()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SiteConfigError, match="no such site configuration file"):
        load_site_config(tmp_path / "nope.toml")


def test_bad_trusted_key_is_a_config_error(tmp_path: Path) -> None:
    """The document's keys are not trusted (issue 11) but still read, to say which are ignored:
    a broken one is the operator's typo, reported with its field."""
    from hotspare.site.load import read_trusted_keys

    path = tmp_path / "site.toml"
    path.write_text(BASE + '\n[[trusted_keys]]\npublic_key = "bm90IGEga2V5"\n')
    site = load_site_config(path)
    with pytest.raises(
        SiteConfigError, match=r"trusted_keys\.0\.public_key: not an Ed25519 public key"
    ):
        read_trusted_keys(site.trusted_keys)

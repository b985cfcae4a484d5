"""Licence files: signing, every refusal reason, and how valid licences add up."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hotspare.signing_keys import (
    BUILT_IN_KEYS,
    TRUST_ROOTS_FILE,
    KeyFileError,
    TrustedPublicKey,
    generate_keypair,
    install_trust_roots,
    key_id,
    parse_public_key,
    public_key_pem,
    read_private_key,
    read_public_key,
    read_trust_roots,
)
from hotspare.site.licences import (
    LicenceRefused,
    RefusalReason,
    canonical_bytes,
    issue_licence,
    read_unverified,
    verify_licence,
)
from hotspare.site.load import load_site_licences
from hotspare.site.model import SiteConfig
from hotspare.site.pool import LicencePool, OfferedLicence, merge_licences

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = datetime(2027, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def trusted(key: Ed25519PrivateKey) -> TrustedPublicKey:
    return parse_public_key(public_key_pem(key.public_key()), "test")


def issue(
    key: Ed25519PrivateKey,
    site: str = "harbour",
    servers: int = 1,
    cameras: int = 20,
    start: datetime = T0,
    end: datetime = T1,
    licence_id: str | None = None,
) -> str:
    return issue_licence(key, site, servers, cameras, start, end, licence_id, issued_at=start)


@pytest.fixture(scope="module")
def vendor() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def test_round_trip(vendor: Ed25519PrivateKey) -> None:
    licence = verify_licence(
        issue(vendor, servers=3, cameras=90), [trusted(vendor)], "harbour", NOW
    )
    assert licence.document.failover_server_licences == 3
    assert licence.document.failover_camera_licences == 90
    assert licence.document.issuer_key_id == key_id(vendor.public_key())


def test_reindenting_keeps_signature_valid(vendor: Ed25519PrivateKey) -> None:
    text = json.dumps(json.loads(issue(vendor)))  # one line, different whitespace
    verify_licence(text, [trusted(vendor)], "harbour", NOW)


def _tamper(text: str, **changes: object) -> str:
    envelope = json.loads(text)
    envelope["document"].update(changes)
    return json.dumps(envelope)


def _forge(vendor: Ed25519PrivateKey) -> str:
    """An attacker's own key, but the document claims the vendor's key id."""
    attacker = Ed25519PrivateKey.generate()
    envelope = json.loads(issue(attacker, cameras=1000))
    forged_doc = dict(envelope["document"], issuer_key_id=key_id(vendor.public_key()))
    envelope["document"] = forged_doc
    envelope["signature"] = base64.b64encode(attacker.sign(canonical_bytes(forged_doc))).decode()
    return json.dumps(envelope)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("forged", RefusalReason.BAD_SIGNATURE),
        ("tampered_count", RefusalReason.BAD_SIGNATURE),
        ("tampered_site", RefusalReason.BAD_SIGNATURE),
        ("unknown_key", RefusalReason.UNKNOWN_ISSUER),
        ("other_site", RefusalReason.OTHER_SITE),
        ("expired", RefusalReason.EXPIRED),
        ("not_yet_valid", RefusalReason.NOT_YET_VALID),
        ("not_json", RefusalReason.MALFORMED),
        ("wrong_format", RefusalReason.MALFORMED),
        ("bad_base64", RefusalReason.MALFORMED),
        ("missing_field", RefusalReason.MALFORMED),
        ("negative_count", RefusalReason.MALFORMED),
    ],
)
def test_refusals(vendor: Ed25519PrivateKey, case: str, reason: RefusalReason) -> None:
    good = issue(vendor)
    now = NOW
    site = "harbour"
    text = {
        "forged": lambda: _forge(vendor),
        "tampered_count": lambda: _tamper(good, failover_camera_licences=2000),
        "tampered_site": lambda: _tamper(good, site_id="elsewhere"),
        "unknown_key": lambda: issue(Ed25519PrivateKey.generate()),
        "other_site": lambda: issue(vendor, site="elsewhere"),
        "expired": lambda: good,
        "not_yet_valid": lambda: good,
        "not_json": lambda: "hello",
        "wrong_format": lambda: json.dumps({"format": "something-else"}),
        "bad_base64": lambda: json.dumps(dict(json.loads(good), signature="***")),
        "missing_field": lambda: _resign(vendor, good, drop="not_after"),
        "negative_count": lambda: _resign(vendor, good, failover_camera_licences=-1),
    }[case]()
    if case == "expired":
        now = T1 + timedelta(days=1)
    if case == "not_yet_valid":
        now = T0 - timedelta(seconds=1)
    with pytest.raises(LicenceRefused) as caught:
        verify_licence(text, [trusted(vendor)], site, now, "x.lic")
    assert caught.value.reason is reason
    assert str(caught.value).startswith("x.lic: refused: ")
    assert reason.text in str(caught.value)


def _resign(key: Ed25519PrivateKey, text: str, drop: str | None = None, **changes: object) -> str:
    """A correctly signed but invalid document: malformed must be caught after the signature."""
    envelope = json.loads(text)
    document = dict(envelope["document"], **changes)
    if drop:
        del document[drop]
    envelope["document"] = document
    envelope["signature"] = base64.b64encode(key.sign(canonical_bytes(document))).decode()
    return json.dumps(envelope)


@pytest.mark.parametrize(
    ("now", "valid"),
    [
        (T0 - timedelta(seconds=1), False),
        (T0, True),
        (T1 - timedelta(seconds=1), True),
        (T1, False),  # not_after is exclusive
    ],
)
def test_validity_boundaries(vendor: Ed25519PrivateKey, now: datetime, valid: bool) -> None:
    text = issue(vendor)
    if valid:
        verify_licence(text, [trusted(vendor)], "harbour", now)
    else:
        with pytest.raises(LicenceRefused):
            verify_licence(text, [trusted(vendor)], "harbour", now)
    licence = verify_licence(text, [trusted(vendor)], "harbour", T0)
    assert LicencePool.at([licence], now).failover_camera_licences == (20 if valid else 0)


def test_site_check_can_be_skipped(vendor: Ed25519PrivateKey) -> None:
    verify_licence(issue(vendor, site="elsewhere"), [trusted(vendor)], None, NOW)


def test_two_licences_add_up_and_duplicates_count_once(vendor: Ed25519PrivateKey) -> None:
    keys = [trusted(vendor)]
    first = verify_licence(
        issue(vendor, servers=2, cameras=40, licence_id="a"), keys, "harbour", NOW
    )
    second = verify_licence(
        issue(vendor, servers=1, cameras=50, licence_id="b"), keys, "harbour", NOW
    )
    pool = LicencePool.at([first, second, first], NOW)
    assert (pool.failover_server_licences, pool.failover_camera_licences) == (3, 90)
    assert pool.licence_ids == ("a", "b")


def test_refused_offer_keeps_previous_licences(vendor: Ed25519PrivateKey) -> None:
    keys = [trusted(vendor)]
    held = [verify_licence(issue(vendor, cameras=20, licence_id="old"), keys, "harbour", NOW)]
    offers = [
        OfferedLicence("forged.lic", _forge(vendor)),
        OfferedLicence("other.lic", issue(vendor, site="elsewhere")),
        OfferedLicence("new.lic", issue(vendor, cameras=10, licence_id="new")),
    ]
    merge = merge_licences(held, offers, keys, "harbour", NOW)
    assert [r.reason for r in merge.refused] == [
        RefusalReason.BAD_SIGNATURE,
        RefusalReason.OTHER_SITE,
    ]
    assert merge.added == ("new",)
    assert LicencePool.at(merge.licences, NOW).failover_camera_licences == 30


def test_merge_drops_expired_and_holds_future(vendor: Ed25519PrivateKey) -> None:
    keys = [trusted(vendor)]
    held = [verify_licence(issue(vendor, licence_id="old"), keys, "harbour", NOW)]
    renewal = issue(
        vendor, cameras=30, licence_id="renewal", start=T1, end=T1 + timedelta(days=365)
    )
    merge = merge_licences(held, [OfferedLicence("renewal.lic", renewal)], keys, "harbour", NOW)
    assert not merge.refused
    assert LicencePool.at(merge.licences, NOW).failover_camera_licences == 20
    assert LicencePool.at(merge.licences, T1).failover_camera_licences == 30
    later = merge_licences(merge.licences, [], keys, "harbour", T1)
    assert [lic.licence_id for lic in later.licences] == ["renewal"]


def test_issue_refuses_bad_input(vendor: Ed25519PrivateKey) -> None:
    with pytest.raises(ValueError, match="not_after"):
        issue(vendor, start=T1, end=T0)
    with pytest.raises(ValueError, match="site_id"):
        issue(vendor, site="Not A Site")


def test_show_reads_without_checking(vendor: Ed25519PrivateKey) -> None:
    document = read_unverified(_tamper(issue(vendor), failover_camera_licences=7))
    assert document.failover_camera_licences == 7


def test_keygen_files(tmp_path: Path) -> None:
    private_path, public_path, kid = generate_keypair(tmp_path / "keys")
    assert read_public_key(public_path).key_id == kid
    assert key_id(read_private_key(private_path).public_key()) == kid
    if os.name == "posix":
        assert private_path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(KeyFileError, match="already exists"):
        generate_keypair(tmp_path / "keys")


def test_raw_base64_public_key(vendor: Ed25519PrivateKey) -> None:
    raw = vendor.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert parse_public_key(base64.b64encode(raw).decode(), "t").key_id == key_id(
        vendor.public_key()
    )
    with pytest.raises(KeyFileError, match="not an Ed25519 public key"):
        parse_public_key("bm90IGEga2V5", "t")


def _site_with(licences: list[str], keys: list[str]) -> SiteConfig:
    return SiteConfig.model_validate({
        "site": {"id": "harbour"},
        "etcd": {"endpoints": ["http://127.0.0.1:2379"]},
        "recording_servers": [{"name": "rec-1", "address": "127.0.0.1:1", "role": "master"}],
        "licences": [{"text": text} for text in licences],
        "trusted_keys": [{"public_key": pem} for pem in keys],
    })


@pytest.fixture
def installed(vendor: Ed25519PrivateKey, tmp_path: Path) -> Iterator[Path]:
    """This installation trusts the vendor's key, from its own licence-keys.pem."""
    path = tmp_path / TRUST_ROOTS_FILE
    path.write_text(public_key_pem(vendor.public_key()), encoding="ascii")
    install_trust_roots(read_trust_roots(path))
    try:
        yield path
    finally:
        install_trust_roots(BUILT_IN_KEYS)


def test_a_self_issued_licence_is_refused_even_with_its_key_in_the_document(
        vendor: Ed25519PrivateKey, installed: Path) -> None:
    """Issue 11: whoever can write the site document could add a key of their own next to a
    licence signed with it; only the installation's keys count."""
    attacker = Ed25519PrivateKey.generate()
    forged = issue(attacker, servers=50, cameras=5000, start=T0, end=T1)
    site = _site_with([forged], [public_key_pem(attacker.public_key())])
    merge = load_site_licences(site, NOW)
    assert merge.licences == ()
    assert [r.reason for r in merge.refused] == [RefusalReason.UNKNOWN_ISSUER]
    # the vendor's licence counts, with or without its key in the document
    genuine = issue(vendor, servers=2, cameras=40)
    for keys in ([], [public_key_pem(attacker.public_key())]):
        counted = load_site_licences(_site_with([genuine, forged], keys), NOW)
        assert [lic.document.failover_server_licences for lic in counted.licences] == [2]


def test_without_trust_roots_no_licence_counts(vendor: Ed25519PrivateKey) -> None:
    install_trust_roots(BUILT_IN_KEYS)
    site = _site_with([issue(vendor)], [public_key_pem(vendor.public_key())])
    merge = load_site_licences(site, NOW)
    assert merge.licences == () and merge.refused[0].reason is RefusalReason.UNKNOWN_ISSUER


def test_trust_roots_file_holds_several_keys_and_refuses_junk(tmp_path: Path) -> None:
    keys = [Ed25519PrivateKey.generate() for _ in range(2)]
    path = tmp_path / TRUST_ROOTS_FILE
    path.write_text("".join(public_key_pem(k.public_key()) for k in keys), encoding="ascii")
    assert [k.key_id for k in read_trust_roots(path)] == [key_id(k.public_key()) for k in keys]
    path.write_text("no keys here\n", encoding="ascii")
    with pytest.raises(KeyFileError, match="holds no"):
        read_trust_roots(path)
    with pytest.raises(KeyFileError, match="cannot read"):
        read_trust_roots(tmp_path / "missing.pem")

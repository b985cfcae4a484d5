"""`site apply`'s licence plan: refuse bad licences, keep held ones the file no longer names."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hotspare.signing_keys import TrustedPublicKey, key_id
from hotspare.site.licence_plan import plan_licences
from hotspare.site.licences import issue_licence
from hotspare.site.model import SiteConfig

NOW = datetime(2026, 11, 25, 22, 0, tzinfo=UTC)
KEY = Ed25519PrivateKey.generate()
OTHER_KEY = Ed25519PrivateKey.generate()


def trusted(key: Ed25519PrivateKey) -> TrustedPublicKey:
    return TrustedPublicKey(key_id(key.public_key()), key.public_key(), "test")


def licence(licence_id: str, *, site: str = "harbour", days: float = 30, start_days: float = -1,
            key: Ed25519PrivateKey = KEY) -> str:
    return issue_licence(key, site, 1, 20, NOW + timedelta(days=start_days),
                         NOW + timedelta(days=days), licence_id=licence_id,
                         issued_at=NOW - timedelta(days=2))


def forged(text: str) -> str:
    envelope = json.loads(text)
    envelope["document"]["failover_camera_licences"] = 999
    return json.dumps(envelope)


def site(*texts: str) -> SiteConfig:
    doc: dict[str, Any] = {
        "site": {"id": "harbour"},
        "etcd": {"endpoints": ["http://127.0.0.1:2379"]},
        "recording_servers": [{"name": "rec-1", "address": "127.0.0.1:8600", "role": "master"}],
        "licences": [{"text": t} for t in texts],
    }
    return SiteConfig.model_validate(doc)


def test_good_licences_are_accepted_in_file_order() -> None:
    plan, texts = plan_licences(site(licence("a"), licence("b")), [trusted(KEY)], [], [], NOW)
    assert not plan.refused
    assert [i for _, i in plan.accepted] == ["a", "b"]
    assert [r.text for r in plan.licence_refs(texts)] == texts


def test_forged_expired_other_site_and_unknown_issuer_are_each_named() -> None:
    bad = [forged(licence("f")), licence("e", days=-0.5, start_days=-10),
           licence("o", site="elsewhere"), licence("u", key=OTHER_KEY)]
    plan, _ = plan_licences(site(licence("ok"), *bad), [trusted(KEY)], [], [], NOW)
    assert [p.refusal.reason.value for p in plan.problems] == [
        "bad_signature", "expired", "other_site", "unknown_issuer"]
    assert [p.source for p in plan.problems] == [f"licences.{i}.text" for i in range(1, 5)]
    assert plan.problems[0].line().startswith("REFUSED [bad_signature] licences.1.text: its "
                                              "signature does not match")


def test_not_yet_valid_renewal_is_accepted() -> None:
    plan, _ = plan_licences(site(licence("next", start_days=10, days=400)), [trusted(KEY)], [],
                            [], NOW)
    assert not plan.refused and plan.accepted == ((0, "next"),)


def test_held_licences_are_carried_unless_named_expired_or_untrusted() -> None:
    held = [licence("old"), licence("same"), licence("gone", days=-1, start_days=-5)]
    plan, texts = plan_licences(site(licence("same")), [trusted(KEY)], held, [trusted(KEY)], NOW)
    assert not plan.refused
    assert [i for i, _ in plan.carried] == ["old"]
    assert plan.expired_held == ("gone",)
    assert len(plan.licence_refs(texts)) == 2
    # A forged entry claiming a held licence's id does not displace the held one.
    plan, _ = plan_licences(site(forged(licence("old"))), [trusted(KEY)], held[:1],
                            [trusted(KEY)], NOW)
    assert plan.refused and [i for i, _ in plan.carried] == ["old"]
    # The file drops the key that signed a held licence: it would stop counting, so say so.
    plan, _ = plan_licences(site(), [trusted(OTHER_KEY)], held[:1], [trusted(KEY)], NOW)
    assert plan.problems[0].held and plan.problems[0].refusal.reason.value == "unknown_issuer"
    assert "held licence old" in plan.problems[0].line()

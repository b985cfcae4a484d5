"""The export manifest's canonical form, signature and frame-span encoding."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hotspare.export.manifest import (
    FORMAT,
    ManifestError,
    canonical_json,
    check_signature,
    decode_runs,
    encode_runs,
    frame_starts,
    sign,
)
from hotspare.signing_keys import key_id


def _manifest() -> dict[str, object]:
    return {"format": FORMAT, "camera": "cam-1", "site_id": "s",
            "pieces": [{"frame_durations": [[3600, 10]], "first_frame_wall_us": 5}],
            "note": "Zürich"}


def test_canonical_json_sorts_keys_without_white_space_in_utf8() -> None:
    assert canonical_json({"b": 1, "a": {"d": [1, 2], "c": "é"}}) == \
        '{"a":{"c":"é","d":[1,2]},"b":1}'.encode()


def test_canonical_json_refuses_nan() -> None:
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


def test_signature_round_trip_and_reindenting_keeps_it_valid() -> None:
    key = Ed25519PrivateKey.generate()
    signed = sign(_manifest(), key)
    assert signed["signing_key_id"] == key_id(key.public_key())
    check_signature(signed, key.public_key())
    reordered = dict(reversed(list(signed.items())))
    check_signature(reordered, key.public_key())


@pytest.mark.parametrize("change", [
    lambda m: m["pieces"][0]["frame_durations"][0].__setitem__(0, 3601),
    lambda m: m["pieces"][0].__setitem__("first_frame_wall_us", 6),
    lambda m: m.__setitem__("camera", "cam-2"),
    lambda m: m.__setitem__("extra", 1),
])
def test_any_changed_value_breaks_the_signature(change: object) -> None:
    key = Ed25519PrivateKey.generate()
    signed = sign(_manifest(), key)
    change(signed)  # type: ignore[operator]
    with pytest.raises(ManifestError, match="altered"):
        check_signature(signed, key.public_key())


def test_another_key_is_refused_even_if_the_manifest_names_it() -> None:
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    signed = sign(_manifest(), key)
    with pytest.raises(ManifestError, match="another key"):
        check_signature(signed, other.public_key())
    # A forger who re-signs with their own key cannot pass the verifier's trusted key either.
    forged = sign({**signed, "camera": "cam-9"}, other)
    with pytest.raises(ManifestError, match="another key"):
        check_signature(forged, key.public_key())


def test_unsigned_or_foreign_documents_are_refused() -> None:
    key = Ed25519PrivateKey.generate()
    with pytest.raises(ManifestError, match="no signature"):
        check_signature({"format": FORMAT}, key.public_key())
    with pytest.raises(ManifestError, match="not a hotspare export"):
        check_signature({**sign(_manifest(), key), "format": "x"}, key.public_key())
    bad = sign(_manifest(), key)
    bad["signature"] = "not base64!"
    with pytest.raises(ManifestError, match="altered"):
        check_signature(bad, key.public_key())


def test_frame_spans_run_length_round_trip() -> None:
    durations = [3600, 3600, 3600, 7200, 3600, 3600]
    runs = encode_runs(durations)
    assert runs == [[3600, 3], [7200, 1], [3600, 2]]
    assert decode_runs(runs) == durations
    assert frame_starts(100, durations) == [100, 3700, 7300, 10900, 18100, 21700]
    assert encode_runs([]) == []


@pytest.mark.parametrize("runs", [[[3600]], [[3600, 0]], [[3600, 2, 1]]])
def test_malformed_runs_are_named(runs: list[list[int]]) -> None:
    with pytest.raises(ManifestError, match="frame duration run"):
        decode_runs(runs)

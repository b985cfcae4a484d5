"""`hotspare licence keygen | issue | verify | show`, called through the real dispatcher."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hotspare.cli.main import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    code, out, _ = run(capsys, "licence", "keygen", "--out", str(tmp_path / "keys"))
    assert code == 0 and "key id:      ed25519:" in out
    return tmp_path / "keys"


def issue(capsys: pytest.CaptureFixture[str], keys: Path, out: Path, *extra: str) -> None:
    code, stdout, err = run(
        capsys,
        "licence",
        "issue",
        "--key",
        str(keys / "licence-signing.key"),
        "--site",
        "harbour",
        "--servers",
        "3",
        "--cameras",
        "90",
        "--days",
        "30",
        "--out",
        str(out),
        *extra,
    )
    assert code == 0, err
    assert "3 failover-server and 90 failover-camera" in stdout


def test_issue_verify_show(tmp_path: Path, keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lic = tmp_path / "harbour.lic"
    issue(capsys, keys, lic)
    pub = str(keys / "licence-signing.pub")
    code, out, _ = run(capsys, "licence", "verify", str(lic), "--trust", pub, "--site", "harbour")
    assert code == 0 and out.startswith("valid: ")
    code, out, _ = run(capsys, "licence", "show", str(lic))
    assert code == 0 and "failover_camera_licences   90" in out


@pytest.mark.parametrize(
    ("mutate", "extra", "reason"),
    [
        ("tamper", [], "[bad_signature]"),
        (None, ["--site", "elsewhere"], "[other_site]"),
        (None, ["--at", "2100-01-01"], "[expired]"),
        (None, ["--at", "2000-01-01T00:00:00Z"], "[not_yet_valid]"),
        ("other_key", [], "[unknown_issuer]"),
    ],
)
def test_verify_refuses_with_reason(
    tmp_path: Path,
    keys: Path,
    capsys: pytest.CaptureFixture[str],
    mutate: str | None,
    extra: list[str],
    reason: str,
) -> None:
    lic = tmp_path / "harbour.lic"
    issue(capsys, keys, lic)
    trust = keys / "licence-signing.pub"
    if mutate == "tamper":
        envelope = json.loads(lic.read_text())
        envelope["document"]["failover_camera_licences"] = 900
        lic.write_text(json.dumps(envelope))
    if mutate == "other_key":
        assert run(capsys, "licence", "keygen", "--out", str(tmp_path / "other"))[0] == 0
        trust = tmp_path / "other" / "licence-signing.pub"
    code, _, err = run(capsys, "licence", "verify", str(lic), "--trust", str(trust), *extra)
    assert code == 3
    assert err.startswith(f"REFUSED {reason} {lic}: refused: ")


def test_keygen_refuses_to_overwrite(keys: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "licence", "keygen", "--out", str(keys))
    assert code == 1 and "already exists" in err


def test_issue_rejects_bad_site(
    tmp_path: Path, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(
        capsys,
        "licence",
        "issue",
        "--key",
        str(keys / "licence-signing.key"),
        "--site",
        "Bad Site",
        "--servers",
        "1",
        "--cameras",
        "1",
        "--days",
        "1",
        "--out",
        str(tmp_path / "x.lic"),
    )
    assert code == 1 and "not a site id" in err
    assert not (tmp_path / "x.lic").exists()


def test_show_malformed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.lic"
    bad.write_text("not a licence")
    code, _, err = run(capsys, "licence", "show", str(bad))
    assert code == 1 and "not a hotspare licence" in err

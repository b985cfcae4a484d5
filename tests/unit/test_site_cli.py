"""`hotspare site validate` and the protection report computed from a site file alone."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hotspare.cli.main import main
from hotspare.signing_keys import TRUST_ROOTS_FILE, install_trust_roots, read_trust_roots
from hotspare.site.eligibility import IDLE, SpareState, SpareStatus
from hotspare.site.load import load_site_config, load_site_licences
from hotspare.site.report import protection_report, render_text

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "site.toml"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def example(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """The shipped example, with a freshly made key and licence where it expects them."""
    site = tmp_path / "site.toml"
    shutil.copy(EXAMPLE, site)
    assert run(capsys, "licence", "keygen", "--out", str(tmp_path / "keys"))[0] == 0
    # this installation trusts the key (the site file's own keys are not trusted, issue 11)
    shutil.copy(tmp_path / "keys" / "licence-signing.pub", tmp_path / "licence-keys.pem")
    code, _, err = run(
        capsys,
        "licence",
        "issue",
        "--key",
        str(tmp_path / "keys" / "licence-signing.key"),
        "--site",
        "harbour",
        "--servers",
        "2",
        "--cameras",
        "40",
        "--days",
        "365",
        "--out",
        str(tmp_path / "licences" / "harbour.lic"),
    )
    assert code == 0, err
    return site


def test_example_validates_and_is_protected(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "site", "validate", str(example), "--strict")
    assert code == 0, err
    assert "valid site configuration" in out
    assert "spare-a: licensed, allotment 20 cameras; idle" in out
    assert "rec-1: protected" in out and "rec-2: protected" in out


def test_json_and_refused_licence(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    licence = example.parent / "licences" / "harbour.lic"
    envelope = json.loads(licence.read_text())
    envelope["document"]["failover_server_licences"] = 9
    licence.write_text(json.dumps(envelope))
    code, out, _ = run(capsys, "site", "validate", str(example), "--json")
    assert code == 0
    data = json.loads(out)
    assert [r["reason"] for r in data["refused_licences"]] == ["bad_signature"]
    assert data["pool"]["failover_server_licences"] == 0
    assert {s["name"]: s["protected"] for s in data["servers"]} == {"rec-1": False, "rec-2": False}
    assert data["servers"][0]["reasons"][0]["code"] == "no_licensed_spare"
    assert data["unallotted_camera_licences"] == 0
    code, _, _ = run(capsys, "site", "validate", str(example), "--strict")
    assert code == 4


def test_invalid_site_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "site.toml"
    bad.write_text(EXAMPLE.read_text().replace('role = "master"', 'role = "recording"'))
    code, out, err = run(capsys, "site", "validate", str(bad))
    assert code == 1 and out == ""
    assert "recording_servers: Value error, exactly one recording server" in err


def test_missing_licence_file_is_refused_not_fatal(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (example.parent / "licences" / "harbour.lic").unlink()
    code, out, _ = run(capsys, "site", "validate", str(example))
    assert code == 0
    assert "refused: the file cannot be read" in out
    assert "rec-1: UNPROTECTED, because" in out


def test_report_with_live_states(example: Path) -> None:
    site = load_site_config(example)
    now = datetime.now(UTC)
    install_trust_roots(read_trust_roots(example.parent / TRUST_ROOTS_FILE))
    licences = load_site_licences(site, now).licences
    states = {"spare-a": SpareStatus(SpareState.COVERING, "rec-2"), "spare-b": IDLE}
    report = protection_report(site, states, licences, now)
    by_name = {p.server: p for p in report.servers}
    assert by_name["rec-2"].covered_by == "spare-a"
    assert by_name["rec-2"].candidate_spares[0] == "spare-a"
    assert by_name["rec-1"].candidate_spares == ("spare-b",)
    # spare-b down too: rec-1 has no free spare left.
    report = protection_report(site, {"spare-a": states["spare-a"]}, licences, now)
    assert [p.server for p in report.unprotected] == ["rec-1"]
    assert "spare-b (down)" in render_text(report)

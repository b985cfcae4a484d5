"""Against a real etcd (no nodes): `site apply` refuses bad licences with etcd untouched,
`hotspare protection` reads live spare states, and the protection monitor announces changes once.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from hotspare.cli.main import main as cli_main
from hotspare.coordination.etcd_adapter import Coordinator
from hotspare.failover.protection import ProtectionMonitor
from hotspare.signing_keys import TRUST_ROOTS_FILE, generate_keypair, read_private_key
from hotspare.site.licences import issue_licence
from hotspare.sitestate import applied as site_config
from hotspare.sitestate import layout
from hotspare.sitestate.events import EventLog, read_events
from tests.support.etcd import EtcdCluster, coordinator_for

SITE = "harbour"


@pytest.fixture(autouse=True)
def _etcd_client_certificate(etcd1: EtcdCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands below reach etcd with the launcher's certificate, as an operator whose
    shell sets $HOTSPARE_ETCD_* does."""
    tls = etcd1.client_tls
    assert tls is not None
    for name, path in (("CA", tls.ca_file), ("CERT", tls.cert_file), ("KEY", tls.key_file)):
        monkeypatch.setenv(f"HOTSPARE_ETCD_{name}_FILE", str(path))


class Files:
    """site.toml with a trusted key file and licence files beside it."""

    def __init__(self, tmp: Path, endpoint: str) -> None:
        self.tmp = tmp
        private, self.public, _ = generate_keypair(tmp / "keys")
        self.key = read_private_key(private)
        self.endpoint = endpoint if "://" in endpoint else f"https://{endpoint}"
        self.licences: list[str] = []
        self.cameras = 3

    def licence(self, name: str, *, site: str = SITE, days: float = 30, start: float = -1,
                servers: int = 1, cameras: int = 4) -> str:
        now = datetime.now(UTC)
        text = issue_licence(self.key, site, servers, cameras, now + timedelta(days=start),
                             now + timedelta(days=days), licence_id=f"lic-{name}",
                             issued_at=now + timedelta(days=start))
        (self.tmp / f"{name}.lic").write_text(text)
        return f"{name}.lic"

    def write(self) -> Path:
        doc: dict[str, Any] = {
            "site": {"id": SITE},
            "etcd": {"endpoints": [self.endpoint]},
            "recording_servers": [
                {"name": "rec-1", "address": "127.0.0.1:1", "role": "master",
                 "cameras": [{"id": f"c{i}", "url": f"rtsp://127.0.0.1:2/c{i}"}
                             for i in range(self.cameras)]},
                {"name": "rec-bsd", "address": "127.0.0.1:3", "platform": "netbsd"},
            ],
            "failover_servers": [{"name": "spare-1", "address": "127.0.0.1:4"}],
            "licences": [{"file": name} for name in self.licences],
            "trusted_keys": [{"file": str(self.public)}],
        }
        path = self.tmp / "site.toml"
        path.write_bytes(tomli_w.dumps(doc).encode())
        # the key `site apply` trusts is the installation's, beside site.toml (issue 11)
        shutil.copyfile(self.public, self.tmp / TRUST_ROOTS_FILE)
        return path


def apply(capsys: pytest.CaptureFixture[str], path: Path, *extra: str) -> tuple[int, str, str]:
    code = cli_main(["site", "apply", str(path), *extra])
    out, err = capsys.readouterr()
    return code, out, err


def stored_ids(coord: Coordinator) -> list[str]:
    applied = site_config.read(coord)
    assert applied is not None
    return sorted(lic.licence_id for lic in applied.licences.licences)


def test_apply_refuses_bad_licences_and_leaves_etcd_unchanged(
        etcd1: EtcdCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = Files(tmp_path, etcd1.endpoints[0])
    coord = coordinator_for(etcd1, site=SITE)
    try:
        files.licences = [files.licence("good")]
        code, out, err = apply(capsys, files.write())
        assert code == 0, err
        assert stored_ids(coord) == ["lic-good"]
        before = coord.get(layout.SITE_CONFIG)
        assert before is not None

        forged = json.loads((tmp_path / files.licence("forged")).read_text())
        forged["document"]["failover_camera_licences"] = 500
        (tmp_path / "forged.lic").write_text(json.dumps(forged))
        cases = {
            "forged.lic": "bad_signature",
            files.licence("expired", days=-1, start=-30): "expired",
            files.licence("foreign", site="elsewhere"): "other_site",
        }
        for name, reason in cases.items():
            files.licences = ["good.lic", name]
            files.cameras = 5  # a change that must not reach etcd either
            revision = coord.revision()
            code, out, err = apply(capsys, files.write())
            assert code == 5, (name, out, err)
            assert f"REFUSED [{reason}] {tmp_path / name}" in err, err
            assert "nothing was written to etcd" in err and "--drop-refused-licences" in err
            assert "keeps the 1 licence(s)" in err
            assert coord.revision() == revision, name
            assert coord.get(layout.SITE_CONFIG) == before
        print(err)

        # Knowingly: the rest is applied, each dropped licence named.
        code, out, err = apply(capsys, files.write(), "--drop-refused-licences")
        assert code == 0, err
        assert "dropped (--drop-refused-licences): REFUSED [other_site]" in err
        assert stored_ids(coord) == ["lic-good"]

        # A file that no longer names a held licence does not remove it.
        files.licences = [files.licence("more")]
        code, out, err = apply(capsys, files.write())
        assert code == 0, err
        assert "kept 1 licence(s) the site already holds" in out and "lic-good" in out
        assert stored_ids(coord) == ["lic-good", "lic-more"]
        assert "allotment 8 cameras" in out  # 2 licences x 4 cameras, one licensed spare
    finally:
        coord.close()


def test_live_report_and_protection_events(
        etcd1: EtcdCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = Files(tmp_path, etcd1.endpoints[0])
    coord = coordinator_for(etcd1, site=SITE)
    try:
        files.licences = [files.licence("main", days=5)]
        assert apply(capsys, files.write())[0] == 0
        endpoint = files.endpoint

        def protection(*extra: str) -> tuple[int, str]:
            code = cli_main(["protection", "--etcd", endpoint, "--site", SITE,
                             "--licence-keys", str(tmp_path / TRUST_ROOTS_FILE), *extra])
            return code, capsys.readouterr().out

        code, out = protection("--strict")
        assert code == 4
        assert "spare-1: licensed, allotment 4 cameras; down" in out, out
        assert "rec-bsd: UNPROTECTED" in out and "rec-bsd runs NetBSD" in out
        assert "spare-1 (down)" in out

        lease = coord.grant_lease(10)
        coord.put(layout.spare("spare-1"), json.dumps({"state": "idle", "covering": None}),
                  lease=lease)
        code, out = protection("--json")
        report = json.loads(out)
        servers = {s["name"]: s for s in report["servers"]}
        assert servers["rec-1"]["protected"] and servers["rec-1"]["candidate_spares"] == ["spare-1"]
        assert [r["code"] for r in servers["rec-bsd"]["reasons"]] == ["netbsd"]
        assert report["spares"][0]["state"] == "idle"

        # Two nodes' monitors, clocks under the test's control; each change announced once.
        clock = [0.0]
        wall = [datetime.now(UTC)]
        current = [site_config.read(coord)]
        monitors = [
            ProtectionMonitor(coord, node, lambda: current[0], EventLog(coord, node),
                              settle=2.0, start_grace=0.0, clock=lambda: clock[0],
                              wall=lambda: wall[0])
            for node in ("rec-1", "spare-1")
        ]

        def step(seconds: float = 2.5) -> list[str]:
            announced = [m.tick() for m in monitors]
            clock[0] += seconds
            announced += [m.tick() for m in monitors]
            return [server for found in announced for server in found]

        def protection_events() -> list[Any]:
            return [e for e in read_events(coord)[0] if e.kind == "protection"]

        assert step() == ["rec-bsd"]  # first sight: only the unprotected one is announced
        assert step() == []
        [first] = protection_events()
        assert first.message.startswith("rec-bsd is UNPROTECTED: rec-bsd runs NetBSD")

        # The spare goes down.
        coord.revoke_lease(lease)
        assert step() == ["rec-1", "rec-bsd"]
        lost = [e for e in protection_events() if e.server == "rec-1"][-1]
        assert "rec-1 is now UNPROTECTED (was protected)" in lost.message
        assert "spare-1 (down)" in lost.message and "start the spares" in lost.message

        # It comes back; then a camera is added beyond the allotment.
        lease = coord.grant_lease(10)
        coord.put(layout.spare("spare-1"), json.dumps({"state": "idle"}), lease=lease)
        assert step() == ["rec-1", "rec-bsd"]
        files.cameras = 5
        assert apply(capsys, files.write())[0] == 0
        current[0] = site_config.read(coord)
        assert step() == ["rec-1"]
        added = protection_events()[-1]
        assert added.data["reasons"] == ["too_many_cameras"], added
        assert "rec-1 has 5 cameras; the most any licensed spare may take is 4" in added.message

        # The licence expires (the monitors' wall clock moves past not_after).
        files.cameras = 3
        assert apply(capsys, files.write())[0] == 0
        current[0] = site_config.read(coord)
        assert step() == ["rec-1"]
        wall[0] = datetime.now(UTC) + timedelta(days=6)
        assert step() == ["rec-1", "rec-bsd"]
        expired = protection_events()[-2]
        assert expired.server == "rec-1" and expired.data["reasons"] == ["no_licensed_spare"]
        assert "install a valid failover-server licence" in expired.message
        # Exactly one event per change although two monitors watched.
        print("\n".join(e.line() for e in protection_events()))
        assert len(protection_events()) == 9
    finally:
        coord.close()

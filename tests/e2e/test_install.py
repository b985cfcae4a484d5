"""hotspare installs like a service: the wheel `scripts/build-wheel` makes installs into a clean
virtualenv with the web UI and its vendored player inside, and the installed copy (not this
checkout) runs a node over HTTPS that serves its API and the API docs' own files. The systemd
units the deploy guide installs pass `systemd-analyze verify` where systemd is present."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import httpx
import pytest

from hotspare.tls import client_context
from tests.support.certs import make_pki
from tests.support.node import make_node

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "packaging" / "systemd"
CAMERA = ("cam-1", "rtsp://127.0.0.1:9/none")  # known to the node, never reachable


def _scripts(env_dir: Path) -> Path:
    return env_dir / ("Scripts" if os.name == "nt" else "bin")


@pytest.mark.slow
def test_wheel_installs_into_a_clean_venv_and_runs_a_node(tmp_path: Path) -> None:
    if shutil.which("bash") is None:
        pytest.skip("scripts/build-wheel is a bash script")
    dist = tmp_path / "dist"
    built = subprocess.run(["bash", str(REPO / "scripts" / "build-wheel"), str(dist)],
                           cwd=REPO, capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    wheels = list(dist.glob("hotspare-*.whl"))
    assert len(wheels) == 1, wheels

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    python = _scripts(env_dir) / ("python.exe" if os.name == "nt" else "python")
    installed = subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheels[0])],
                               capture_output=True, text=True, timeout=900)
    assert installed.returncode == 0, installed.stderr

    # The installed package is imported from the venv, not from this checkout, and carries the
    # web UI (served by site nodes) with its vendored player.
    where = subprocess.run(
        [str(python), "-c", "import hotspare.web.ui as ui; print(ui.__file__); "
         "assert (ui.STATIC_DIR / 'index.html').is_file(); "
         "assert ui.HLS_JS.stat().st_size > 100_000"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(env_dir), where.stdout

    hotspare = _scripts(env_dir) / ("hotspare.exe" if os.name == "nt" else "hotspare")
    pki = make_pki(tmp_path / "pki")
    node = make_node(tmp_path, "rec-1", [CAMERA], api_extra={
        "tls_cert_file": str(pki.cert_file), "tls_key_file": str(pki.key_file)})
    node.command = (str(hotspare),)
    checked = subprocess.run([str(hotspare), "config", "check", str(node.config_path)],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    try:
        node.start()
        assert node.url is not None and node.url.startswith("https://")
        headers = {"Authorization": f"Bearer {node.token}"}
        with httpx.Client(base_url=node.url, verify=client_context(pki.ca_file), headers=headers,
                          timeout=10.0) as http:
            assert http.get("/api/v1/health").json()["server_name"] == "rec-1"
            docs_js = http.get("/docs/swagger-ui-bundle.js")
            assert docs_js.status_code == 200 and len(docs_js.content) > 100_000
            schema = http.get("/openapi.json")
            assert schema.status_code == 200 and "/api/v1/health" in schema.json()["paths"]
    finally:
        node.stop()
    assert "Traceback" not in node.log_path.read_text(encoding="utf-8")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None or sys.platform != "linux",
                    reason="systemd-analyze is not installed")
def test_systemd_units_verify() -> None:
    units = sorted(UNITS.glob("*.service"))
    assert [u.name for u in units] == ["hotspare-etcd.service", "hotspare-node.service"]
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", *map(str, units)],
                            capture_output=True, text=True, timeout=60, cwd=UNITS)
    # The programs the units start live on the target machine, not here: only that may fail.
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if line.strip() and "is not executable: No such file or directory" not in line]
    assert not problems, "\n".join(problems)
    for unit in units:
        text = unit.read_text(encoding="utf-8")
        for hardening in ("ProtectSystem=strict", "NoNewPrivileges=true", "Restart=always",
                          "CapabilityBoundingSet=\n", "User="):
            assert hardening in text, f"{unit.name} lacks {hardening.strip()}"

"""A wrong node configuration is refused, naming each bad field, before anything starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hotspare.config.load import ConfigError, load_node_config
from hotspare.pki.certs import CertKind
from tests.support.etcd import session_pki

GOOD = """
name = "rec-1"
data_dir = "data"
[api]
token = "secret-token-0123456789"
[[cameras]]
id = "cam-1"
url = "rtsp://127.0.0.1:8554/cam-1"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_good_config_resolves_relative_paths(tmp_path: Path) -> None:
    config = load_node_config(write(tmp_path, GOOD))
    assert config.data_dir == (tmp_path / "data").resolve()
    assert config.cameras[0].transport == "tcp"
    assert config.recording.segment_seconds == 4.0


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        (
            (
                'url = "rtsp://127.0.0.1:8554/cam-1"',
                'url = "rtsp://127.0.0.1:8554/cam-1"\nfps = 25',
            ),
            "cameras.0.fps",
            "unknown field",
        ),
        (
            ('url = "rtsp://127.0.0.1:8554/cam-1"', 'url = "http://127.0.0.1/cam-1"'),
            "cameras.0.url",
            "must start with rtsp://",
        ),
        (('id = "cam-1"\n', ""), "cameras.0.id", "required field is missing"),
        (('id = "cam-1"', 'id = "../etc"'), "cameras.0.id", "should match pattern"),
        (
            ('url = "rtsp://127.0.0.1:8554/cam-1"', 'url = "rtsp://admin:pw@10.0.0.1/x"'),
            "cameras.0.url",
            "must not carry a password",
        ),
        (('token = "secret-token-0123456789"', ""), "api", "set `token` or `token_file`"),
        (("[api]", "segment_seconds = 4\n[api]"), "segment_seconds", "unknown field"),
    ],
)
def test_bad_config_names_the_field(
    tmp_path: Path, change: tuple[str, str], field: str, reason: str
) -> None:
    old, new = change
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(ConfigError) as caught:
        load_node_config(path)
    message = str(caught.value)
    assert f"  {field}: " in message, message
    assert reason in message, message
    assert "pw@" not in message


def test_duplicate_camera_ids_refused(tmp_path: Path) -> None:
    text = GOOD + '\n[[cameras]]\nid = "cam-1"\nurl = "rtsp://127.0.0.1:8554/other"\n'
    with pytest.raises(ConfigError, match="camera id 'cam-1' appears twice"):
        load_node_config(write(tmp_path, text))


def test_not_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_node_config(write(tmp_path, "name = "))


def test_node_refuses_to_start_and_writes_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('id = "cam-1"', 'id = "Cam 1"'))
    result = subprocess.run(
        [sys.executable, "-m", "hotspare", "node", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "refusing to start" in result.stderr
    assert "cameras.0.id" in result.stderr
    assert not (tmp_path / "data").exists()


def test_config_check_prints_summary_without_secrets(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + 'username = "admin"\npassword = "hunter2"\n')
    result = subprocess.run(
        [sys.executable, "-m", "hotspare", "config", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert '"cam-1"' in result.stdout
    assert "hunter2" not in result.stdout


# ---------------------------------------------------------------- timing relations (issue 10)

SITE_NODE = GOOD + """
[site]
id = "harbour"
etcd_endpoints = ["https://127.0.0.1:2379"]
"""

# One violation per relation, as [table] overrides; each must name both fields in its error.
VIOLATIONS: dict[int, dict[str, dict[str, float]]] = {
    0: {"site": {"probe_timeout_seconds": 2.5, "lease_ttl_seconds": 2.0}},
    1: {"site": {"probe_interval_seconds": 0.6, "probe_timeout_seconds": 0.5}},
    2: {"site": {"etcd_request_timeout_seconds": 1.5, "lease_ttl_seconds": 2.0,
                 "etcd_deadline_seconds": 10.0}},
    3: {"site": {"etcd_request_timeout_seconds": 1.0, "etcd_deadline_seconds": 1.5}},
    4: {"recording": {"reconnect_initial_seconds": 20.0, "reconnect_max_seconds": 10.0}},
}


def _with(overrides: dict[str, dict[str, float]]) -> str:
    text = SITE_NODE
    for table, values in overrides.items():
        lines = "".join(f"{key} = {value}\n" for key, value in values.items())
        if f"[{table}]\n" in text:
            text = text.replace(f"[{table}]\n", f"[{table}]\n{lines}", 1)
        else:
            text += f"\n[{table}]\n{lines}"
    return text


def test_every_relation_has_a_violation_case() -> None:
    from hotspare.config.timing import RELATIONS

    assert sorted(VIOLATIONS) == list(range(len(RELATIONS)))
    for index, relation in enumerate(RELATIONS):
        assert set(VIOLATIONS[index]) == {relation.section}
        assert set(relation.fields) <= set(VIOLATIONS[index][relation.section])


@pytest.mark.parametrize("index", sorted(VIOLATIONS))
def test_broken_relation_names_both_fields_and_the_reason(tmp_path: Path, index: int) -> None:
    from hotspare.config.timing import RELATIONS

    relation = RELATIONS[index]
    values = VIOLATIONS[index][relation.section]
    with pytest.raises(ConfigError) as caught:
        load_node_config(write(tmp_path, _with(VIOLATIONS[index])))
    message = str(caught.value)
    assert "1 problem(s)" in message, message
    for name in relation.fields:
        assert f"{relation.section}.{name} ({values[name]:g})" in message, message
    assert relation.reason in message, message
    assert "Value error" not in message


def test_probe_example_message(tmp_path: Path) -> None:
    text = _with({"site": {"probe_timeout_seconds": 0.9, "probe_interval_seconds": 0.25}})
    with pytest.raises(ConfigError) as caught:
        load_node_config(write(tmp_path, text))
    assert ("  site.probe_interval_seconds (0.25) + site.probe_timeout_seconds (0.9) must "
            "together be at most 1 s (the designated spare's grace): ") in str(caught.value)


def test_default_timings_satisfy_every_relation(tmp_path: Path) -> None:
    config = load_node_config(write(tmp_path, SITE_NODE))
    assert config.site is not None
    assert config.site.probe_interval_seconds == 0.25  # crash -> claim ≈ 2 intervals: unchanged
    assert config.site.etcd_request_timeout_seconds == 1.0
    assert config.site.etcd_deadline_seconds == 3.0


def test_relation_in_site_toml_names_the_server_path() -> None:
    from hotspare.site.load import SiteConfigError, parse_site_config

    text = """
[site]
id = "harbour"
[etcd]
endpoints = ["http://127.0.0.1:2379"]
[[recording_servers]]
name = "rec-1"
address = "127.0.0.1:8600"
role = "master"
[recording_servers.recording]
reconnect_initial_seconds = 5
reconnect_max_seconds = 1
"""
    with pytest.raises(SiteConfigError) as caught:
        parse_site_config(text, "site.toml")
    assert ("recording_servers.0.recording.reconnect_initial_seconds (5) must be at most "
            "recording_servers.0.recording.reconnect_max_seconds (1)") in str(caught.value)


def test_docs_list_every_relation() -> None:
    from hotspare.config.timing import RELATIONS

    docs = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text(encoding="utf-8")
    flat = " ".join(docs.split())
    for relation in RELATIONS:
        assert relation.statement(f"{relation.section}.") in flat, relation.statement()


def test_node_coordinator_uses_the_configured_etcd_timings(tmp_path: Path) -> None:
    from hotspare.coordination.etcd_adapter import Coordinator

    text = _with({"site": {"etcd_request_timeout_seconds": 0.5, "etcd_deadline_seconds": 2.0}})
    site = load_node_config(write(tmp_path, text)).site
    assert site is not None
    coord = Coordinator.for_member(site)
    assert (coord.timeout, coord.deadline, coord.prefix) == (0.5, 2.0, "/hotspare/harbour/")


# ---------------------------------------------------------------- shipped and generated files


def test_example_site_validates_after_the_steps_its_header_names(tmp_path: Path) -> None:
    """The header's commands, run as printed (from the examples folder), then the check."""
    from hotspare.cli.main import main as cli_main

    examples = Path(__file__).parents[2] / "examples"
    work = tmp_path / "examples"
    work.mkdir()
    (work / "site.toml").write_text((examples / "site.toml").read_text(encoding="utf-8"),
                                    encoding="utf-8")
    header = [line.removeprefix("#").strip()
              for line in (work / "site.toml").read_text(encoding="utf-8").splitlines()[:12]]
    commands = [line.removeprefix("hotspare ").split() for line in header
                if line.startswith("hotspare ")]
    assert commands[-1] == ["site", "validate", "site.toml"], header
    import os

    old = Path.cwd()
    os.chdir(work)
    try:
        for command in commands:
            assert cli_main(command) == 0, command
    finally:
        os.chdir(old)


def test_example_node_file_is_valid(tmp_path: Path) -> None:
    """Valid once its token file exists, as on the machine it is written for; before that the
    check names the missing file (a node would otherwise fail at start)."""
    text = (Path(__file__).parents[2] / "examples" / "node.toml").read_text(encoding="utf-8")
    copy = tmp_path / "node.toml"
    token = tmp_path / "token"
    node_cert = session_pki().ensure(CertKind.NODE, "rec-1", ["127.0.0.1"])
    pki = tmp_path / "pki"
    pki.mkdir()
    for source, name in ((node_cert.ca_file, "ca.pem"), (node_cert.cert_file, "rec-1.pem"),
                         (node_cert.key_file, "rec-1.key")):
        (pki / name).write_bytes(source.read_bytes())
    copy.write_text(text.replace("/etc/hotspare/token", token.as_posix())
                    .replace("/etc/hotspare/pki", pki.as_posix()), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"api\.token_file .*no such file"):
        load_node_config(copy)
    token.write_text("an-example-site-token-0123456789\n", encoding="utf-8")
    config = load_node_config(copy)
    assert config.site is not None


def _sites_files(tmp_path: Path) -> list[Path]:
    """node.toml files as the demo and the end-to-end harness write them."""
    from types import SimpleNamespace

    from hotspare.demo import runner
    from hotspare.demo.site_files import ServerPlan, SitePlan, SparePlan, write_site
    from tests.support.site import FailoverSite

    demo = write_site(tmp_path / "demo", SitePlan(
        site_id="demo", etcd_endpoints=["127.0.0.1:2379"], token="t" * 32,
        servers=[ServerPlan("rec-1", {"c1": "rtsp://127.0.0.1:8554/c1"}, role="master")],
        spares=[SparePlan("spare-1")], recording=dict(runner.RECORDING),
        membership=dict(runner.MEMBERSHIP), etcd_pki=session_pki()))
    harness = FailoverSite(tmp_path / "harness", {"rec-1": 1, "rec-2": 1}, ["spare-1"])
    harness.etcd = SimpleNamespace(  # type: ignore[assignment]
        endpoints=["127.0.0.1:2379"], pki=session_pki())
    harness.sim = SimpleNamespace(  # type: ignore[assignment]
        rtsp_url=lambda camera: f"rtsp://127.0.0.1:8554/{camera}")
    harness._write_site()
    return [*demo.node_tomls.values(), *harness.tmp.glob("*/node.toml"),
            demo.site_toml, harness.tmp / "site.toml"]


def test_demo_and_test_harness_files_are_valid(tmp_path: Path) -> None:
    from hotspare.site.load import load_site_config

    files = _sites_files(tmp_path)
    assert len(files) >= 6
    for path in files:
        if path.name == "site.toml":
            load_site_config(path)
        else:
            assert load_node_config(path).site is not None


# ---------------------------------------------------------------- a wrong path, one clear line


@pytest.mark.parametrize("argv", [
    ["node", "--config", "{dir}"],
    ["node", "--config", "{bin}"],
    ["config", "check", "{dir}"],
    ["site", "apply", "{dir}"],
    ["site", "apply", "{bin}"],
    ["site", "validate", "{dir}"],
])
def test_folder_or_binary_file_ends_in_one_line(
    tmp_path: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from hotspare.cli.main import main as cli_main

    (tmp_path / "node.toml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "site.bin").write_bytes(b"\x00\xff\xfe binary \x80")
    paths = {"dir": str(tmp_path), "bin": str(tmp_path / "site.bin")}
    code = cli_main([part.format(**paths) for part in argv])
    err = capsys.readouterr().err
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    target = paths["dir"] if "{dir}" in argv else paths["bin"]
    assert target in lines[0]
    if "{dir}" in argv:
        assert "is a folder; pass the" in lines[0]
        if argv[0] in ("node", "config"):
            assert str(tmp_path / "node.toml") in lines[0]  # the file it probably meant
    else:
        assert "not a text file" in lines[0]


# ---------------------------------------------------------------- a newcomer's path


def _readme_commands() -> list[str]:
    """The README's by-hand block, comments dropped."""
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    block = readme.split("By hand, in another terminal", 1)[1].split("```sh\n", 1)[1]
    block = block.split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_demo_prints_the_readmes_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from types import SimpleNamespace

    from hotspare.demo import runner

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(runner, "hotspare_command", lambda: ".venv/bin/hotspare")
    site = runner.DemoSite(runner.DemoOptions(base_dir=Path("var/demo")))
    urls = {"rec-1": "http://127.0.0.1:20771", "rec-2": "http://127.0.0.1:24440",
            "spare-1": "http://127.0.0.1:29719"}
    site.nodes = {name: SimpleNamespace(url=url, process=SimpleNamespace(pid=4242))  # type: ignore[misc]
                  for name, url in urls.items()}
    tomls = {name: tmp_path / "var" / "demo" / name / "node.toml" for name in urls}
    site._print_guide(tomls, tmp_path / "var" / "demo" / "token")
    printed = [line.strip() for line in capsys.readouterr().out.splitlines()]
    for command in _readme_commands():
        expected = (command.replace("MASTER", urls["rec-1"])
                    .replace("PID_OF_REC_2", "4242"))
        assert expected in printed, f"{expected!r} not printed by the demo:\n" + "\n".join(printed)

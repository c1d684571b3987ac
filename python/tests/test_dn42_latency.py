"""DN42 `latency = "auto"` (issue 22, item 5): the grammar (a class 1-9 or
"auto"), the render (each auto peer's class is a BIRD constant from a file of
its own), the NixOS unit and timer, and the measuring script
(modules/lib/resources/dn42-latency-update.sh) run for real: a stand-in ping
printing chosen round-trip times, a running BIRD (3, 2.17, the system's) in a
namespace of its own reconfigured through its socket only when the class
changes."""

from __future__ import annotations

import math
import os
import shlex
import shutil
import subprocess
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pinned
import pytest
import tomlkit
from nixcore import EXAMPLE_PLAN, needs_nix, problems_of, render
from test_dn42_core import SPEC
from test_dn42_roa import BIRDS, RESOURCES

from ibgp_tunnel.check import check_data
from ibgp_tunnel.doctor.collect import Output, Snapshot

pytestmark = needs_nix
needs_inputs = pinned.needs_inputs

SCRIPT = RESOURCES / "dn42-latency-update.sh"
UNIT = "ibgp-tunnel-dn42-latency"


def auto_plan(tmp_path: Path, latency: object = "auto") -> Path:
    data = tomllib.loads(EXAMPLE_PLAN.read_text())
    data["hosts"]["dmz"]["dn42_peers"]["peer1"]["latency"] = latency
    path = tmp_path / "plan.toml"
    path.write_text(tomlkit.dumps(data))
    return path


# --- grammar and render ---------------------------------------------------------


def test_auto_renders_the_measured_constant(tmp_path: Path) -> None:
    artifacts = render(auto_plan(tmp_path), "dmz")
    conf = artifacts["birdConfig"]
    assert 'include "/var/lib/ibgp-tunnel/dn42-latency/peer1.conf";' in conf
    assert conf.count("dn42_update_latency(dn42latency_peer1);") == 2  # ipv4, ipv6 imports
    assert "dn42_update_latency(2)" not in conf
    latency = artifacts["dn42Latency"]
    assert latency["arguments"] == [
        "--probes",
        "5",
        "peer1",
        "fe80::1080",
        "dn42-peer1",
        "/var/lib/ibgp-tunnel/dn42-latency/peer1.conf",
        "dn42latency_peer1",
    ]
    assert latency["initial"] == [
        {
            "file": "/var/lib/ibgp-tunnel/dn42-latency/peer1.conf",
            "text": "define dn42latency_peer1 = 9;",
        }
    ]


def test_a_static_class_has_no_measurement(tmp_path: Path) -> None:
    artifacts = render(auto_plan(tmp_path, 3), "dmz")
    assert "dn42Latency" not in artifacts
    assert "dn42-latency" not in artifacts["birdConfig"]


@pytest.mark.parametrize("value", ["fast", "Auto", "", 0, 10, 2.5])
def test_anything_else_is_refused_by_the_plan(tmp_path: Path, value: object) -> None:
    findings = check_data(tomllib.loads(auto_plan(tmp_path, value).read_text()))
    shown = [f"{f.path}: {f.message}" for f in findings]
    assert any("dn42_peers.peer1.latency" in line for line in shown), shown


@pytest.mark.parametrize("value", ['"fast"', '"auto; }"', "0", "10"])
def test_the_core_refuses_anything_else_where_it_emits(value: str) -> None:
    peer = f"s.dn42Peers.peer1 // {{ latency = {value}; }}"
    spec = f"let s = {SPEC}; in s // {{ dn42Peers.peer1 = {peer}; }}"
    found = problems_of(spec)
    assert any(p["path"].endswith("dn42Peers.peer1.latency") for p in found), found


# --- the measuring script against a real BIRD ----------------------------------


def fake_ping(directory: Path, times: list[str]) -> Path:
    """A ping that prints these round-trip times (ms) as iputils does, one line
    per answered probe, and logs its arguments."""
    path = directory / "ping"
    lines = "".join(
        f'echo "64 bytes from fe80::1080%dn42-peer1: icmp_seq={i} ttl=64 time={t} ms"\n'
        for i, t in enumerate(times, 1)
    )
    path.write_text(f'#!/bin/bash\necho "$@" >> {directory}/ping.log\n{lines}')
    path.chmod(0o755)
    return path


class Measured:
    """BIRD with a bird.conf like a reflector's: the class file included, a
    static route tagged with it (as the peer's import filter does)."""

    def __init__(self, bird_dir: Path, tmp_path: Path) -> None:
        self.bird_dir = bird_dir
        self.tmp = tmp_path
        self.file = tmp_path / "latency" / "peer1.conf"
        self.conf = tmp_path / "bird.conf"
        self.socket = tmp_path / "bird.ctl"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, initial: int = 9) -> None:
        self.file.parent.mkdir()
        self.file.write_text(f"define dn42latency_peer1 = {initial};\n")
        self.conf.write_text(
            "router id 192.0.2.1;\n"
            + (RESOURCES / "dn42-communities.conf").read_text()
            + f'include "{self.file}";\n'
            + "protocol static s4 {\n  ipv4 { import filter { "
            + "dn42_update_latency(dn42latency_peer1); accept; }; };\n"
            + "  route 172.21.80.0/24 unreachable;\n}\n"
        )
        bird = str(self.bird_dir / "bird")
        self.proc = subprocess.Popen(
            ["unshare", "--net", bird, "-f", "-c", str(self.conf), "-s", str(self.socket)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while self.birdc("show", "status").returncode != 0:
            assert self.proc.poll() is None, "BIRD exited at start"
            assert time.monotonic() < deadline, "BIRD never answered"
            time.sleep(0.05)

    def birdc(self, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bird_dir / "birdc"), "-s", str(self.socket), *command],
            capture_output=True,
            text=True,
            check=False,
        )

    def run(
        self, times: list[str], probes: int | None = None, script: Path = SCRIPT, **env: str
    ) -> subprocess.CompletedProcess[str]:
        ping = fake_ping(self.tmp, times)
        argv = ["--probes", str(probes or len(times)), "peer1", "fe80::1080", "dn42-peer1"]
        argv += [str(self.file), "dn42latency_peer1"]
        environment = {
            **os.environ,
            "BIRD": str(self.bird_dir / "bird"),
            "BIRDC": str(self.bird_dir / "birdc"),
            "BIRDC_SOCKET": str(self.socket),
            "BIRD_CONF": str(self.conf),
            "PING": str(ping),
            **env,
        }
        return subprocess.run(
            ["bash", str(script), *argv],
            capture_output=True,
            text=True,
            env=environment,
            check=False,
        )

    def community(self) -> str:
        deadline = time.monotonic() + 10
        while True:
            out = self.birdc("show", "route", "172.21.80.0/24", "all").stdout
            if "(64511," in out or time.monotonic() > deadline:
                return out
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture(params=BIRDS, ids=[name for name, _ in BIRDS])
def measured(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Measured]:
    if os.geteuid() != 0:
        pytest.skip("BIRD runs in a network namespace: needs root")
    m = Measured(request.param[1], tmp_path)
    try:
        yield m
    finally:
        m.stop()


def _class(ms: float) -> int:
    """DN42's table, independently: 1 under e^1 ms, x under e^x, 9 beyond."""
    return next((x for x in range(1, 9) if ms < math.exp(x)), 9)


def test_the_median_sets_the_class_and_bird_applies_it(measured: Measured) -> None:
    measured.start()
    assert "(64511,9)" in measured.community()
    # Median 12.0 ms (an outlier does not count): class 3 (e^2 7.4 <= 12 < e^3 20.1).
    done = measured.run(["11.9", "12.0", "250.0", "12.4", "3.1"])
    assert done.returncode == 0, done.stderr
    assert _class(12.0) == 3
    assert measured.file.read_text().splitlines()[-1] == "define dn42latency_peer1 = 3;"
    assert (measured.file.parent / "peer1.conf.rtt").read_text() == "12.0\n"
    out = measured.community()
    assert "(64511,3)" in out and "(64511,9)" not in out, out
    prom = (measured.file.parent / "dn42-latency.prom").read_text()
    assert 'ibgp_tunnel_dn42_latency_class{peer="peer1"} 3' in prom
    assert 'ibgp_tunnel_dn42_latency_rtt_seconds{peer="peer1"} 0.012000' in prom
    # What the node exporter's textfile collector serves: Prometheus' own linter.
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed (apt: prometheus)"
    lint = subprocess.run(
        [promtool, "check", "metrics"], input=prom, capture_output=True, text=True, check=False
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    # The ping was bound to the tunnel and aimed at the neighbour.
    assert "-I dn42-peer1 fe80::1080" in (measured.tmp / "ping.log").read_text()


def test_the_same_class_does_not_reconfigure(measured: Measured) -> None:
    measured.start(initial=3)
    before = measured.file.stat().st_mtime_ns
    # A BIRD that refuses every configure: the run must not need one.
    refusing = measured.tmp / "birdc-refusing"
    refusing.write_text(
        f'#!/bin/bash\nfor a; do [ "$a" = configure ] && {{ echo refused; exit 1; }}; done\n'
        f'exec {measured.bird_dir / "birdc"} "$@"\n'
    )
    refusing.chmod(0o755)
    done = measured.run(["10.0", "11.0", "12.0"], BIRDC=str(refusing))
    assert done.returncode == 0, done.stderr
    assert "reconfigured" not in done.stdout
    assert measured.file.stat().st_mtime_ns == before


def test_lost_probes_keep_the_class(measured: Measured) -> None:
    measured.start(initial=4)
    # Five probes asked, one answered: not a measurement.
    done = measured.run(["500.0"], probes=5)
    assert done.returncode == 1
    assert "fewer than half" in done.stderr
    assert measured.file.read_text() == "define dn42latency_peer1 = 4;\n"
    assert (measured.file.parent / "peer1.conf.rtt").read_text() == "lost\n"
    assert "(64511,4)" in measured.community()


def test_a_class_bird_would_not_load_is_not_installed(measured: Measured) -> None:
    measured.start(initial=5)
    # bird.conf no longer includes the file: the check must refuse the change.
    text = measured.conf.read_text()
    measured.conf.write_text(
        text.replace(f'include "{measured.file}";\n', "define dn42latency_peer1 = 5;\n")
    )
    done = measured.run(["1.0", "1.0", "1.0"])
    assert done.returncode == 1
    assert "would not load" in done.stderr
    assert measured.file.read_text() == "define dn42latency_peer1 = 5;\n"


def test_the_units_copy_stands_alone_with_the_shared_check(
    measured: Measured, tmp_path: Path
) -> None:
    """The script as the core hands it to the unit (a store path, nothing beside it):
    the shared config_loads is inside, and both of its answers still work."""
    alone = tmp_path / "store" / "dn42-latency-update"
    alone.parent.mkdir()
    alone.write_text(render(auto_plan(tmp_path), "dmz")["dn42Latency"]["script"])
    assert "bird-config-loads.sh" not in alone.read_text()
    measured.start(initial=5)
    done = measured.run(["1.0", "1.0", "1.0"], script=alone)
    assert done.returncode == 0, done.stderr
    assert measured.file.read_text().splitlines()[-1] == "define dn42latency_peer1 = 1;"
    measured.conf.write_text(
        measured.conf.read_text().replace(
            f'include "{measured.file}";\n', "define dn42latency_peer1 = 1;\n"
        )
    )
    refused = measured.run(["100.0", "100.0", "100.0"], script=alone)
    assert refused.returncode == 1 and "would not load" in refused.stderr, refused.stderr
    assert measured.file.read_text().splitlines()[-1] == "define dn42latency_peer1 = 1;"


def test_a_planted_class_file_is_replaced_not_loaded(measured: Measured) -> None:
    measured.start(initial=5)
    # Someone wrote config into the file after BIRD loaded it, beside the very class
    # the next run measures: that run finds no file it wrote, and installs a clean one
    # (checked with bird -p) before BIRD reloads.
    measured.file.write_text(
        "define dn42latency_peer1 = 4;\nprotocol static evil { ipv4; route 0.0.0.0/0 blackhole; }\n"
    )
    done = measured.run(["30.0", "31.0", "29.0"])
    assert done.returncode == 0, done.stderr
    assert measured.file.read_text().splitlines()[1:] == ["define dn42latency_peer1 = 4;"]
    assert "evil" not in measured.birdc("show", "protocols").stdout
    assert "(64511,4)" in measured.community()


def test_core_refuses_a_hand_made_peer_name_before_it_reaches_a_path() -> None:
    peer = 's.dn42Peers.peer1 // { latency = "auto"; }'
    spec = f'let s = {SPEC}; in s // {{ dn42Peers = {{ "../../x" = {peer}; }}; }}'
    found = problems_of(spec)
    assert any("is not a usable name" in p["message"] for p in found), found


@pytest.mark.parametrize(
    "arguments",
    [
        ["peer1", "fe80::1080;reboot", "dn42-peer1", "/tmp/x.conf", "sym"],
        ["peer1", "fe80::1080", "dn42-peer1 x", "/tmp/x.conf", "sym"],
        ["peer1", "fe80::1080", "dn42-peer1", "/etc/../tmp/x.conf", "sym"],
        ["peer1", "fe80::1080", "dn42-peer1", "/tmp/x.conf", "sym = 1; protocol x"],
        ["peer1", "fe80::1080", "dn42-peer1", "relative.conf", "sym"],
        ["peer1", "-fflood", "dn42-peer1", "/tmp/x.conf", "sym"],
    ],
)
def test_hostile_arguments_are_refused(tmp_path: Path, arguments: list[str]) -> None:
    _assert_refused(tmp_path, arguments)


def _assert_refused(tmp_path: Path, arguments: list[str]) -> None:
    """The script refuses the arguments before it pings or writes anything."""
    ping = fake_ping(tmp_path, ["1.0"])
    done = subprocess.run(
        ["bash", str(SCRIPT), *arguments],
        capture_output=True,
        text=True,
        env={**os.environ, "PING": str(ping), "BIRD": "false", "BIRDC": "false"},
        check=False,
    )
    assert done.returncode == 1
    assert "refusing" in done.stderr
    assert not (tmp_path / "ping.log").exists()


@pytest.mark.parametrize("name", ['p"} 1\nibgp_tunnel_dn42_latency_class{peer="x', "p\\", "p q"])
def test_a_name_that_would_forge_a_metric_is_refused(tmp_path: Path, name: str) -> None:
    """The peer name becomes the `peer` label of dn42-latency.prom, which the node
    exporter serves: a quote, backslash or newline there would forge series."""
    directory = tmp_path / "latency"
    directory.mkdir()
    _assert_refused(
        tmp_path, [name, "fe80::1080", "dn42-peer1", str(directory / "peer1.conf"), "sym"]
    )
    assert not (directory / "dn42-latency.prom").exists()


# --- the NixOS module ------------------------------------------------------------


def _module_example(extra: str) -> dict[str, object]:
    # On ROA files (the example's twin): the latency stub merged with the ROA stubs.
    from test_nixos_module import example_roa_files

    return example_roa_files("dmz", extra)


@needs_inputs
def test_the_module_runs_a_sandboxed_timer_for_auto_peers() -> None:
    result = _module_example('services.ibgpTunnel.dn42Peers.peer1.latency = lib.mkForce "auto";')
    config = result["config"]
    assert result["failedAssertions"] == []
    assert config["systemd"]["timers"][UNIT]["timerConfig"]["OnUnitActiveSec"] == "5min"
    service = config["systemd"]["services"][UNIT]
    argv = shlex.split(service["serviceConfig"]["ExecStart"])
    assert argv[1:] == [
        "--probes",
        "5",
        "peer1",
        "fe80::1080",
        "dn42-peer1",
        "/var/lib/ibgp-tunnel/dn42-latency/peer1.conf",
        "dn42latency_peer1",
    ]
    assert service["serviceConfig"]["User"] == "bird"
    assert service["serviceConfig"]["AmbientCapabilities"] == ["CAP_NET_RAW"]
    assert service["serviceConfig"]["ReadWritePaths"] == ["/var/lib/ibgp-tunnel/dn42-latency"]
    rules = config["systemd"]["tmpfiles"]["rules"]
    assert (
        "f /var/lib/ibgp-tunnel/dn42-latency/peer1.conf 0644 bird bird - "
        "define dn42latency_peer1 = 9;" in rules
    )
    bird = config["services"]["bird"]
    assert "dn42latency_peer1.conf" in bird["preCheckConfig"]
    assert "dn42_roa4.conf" in bird["preCheckConfig"]  # both stubs, merged


@needs_inputs
def test_the_module_build_check_passes_with_auto(tmp_path: Path) -> None:
    bird = _module_example('services.ibgpTunnel.dn42Peers.peer1.latency = lib.mkForce "auto";')[
        "config"
    ]["services"]["bird"]
    (tmp_path / "out").write_text(bird["config"])
    (tmp_path / "bird.conf").symlink_to("out")
    script = f"set -e\n{bird['preCheckConfig']}\nbird -d -p -c bird.conf\n"
    done = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


@needs_inputs
def test_no_latency_unit_without_auto() -> None:
    config = _module_example("")["config"]
    assert UNIT not in config["systemd"]["services"]
    assert UNIT not in config["systemd"]["timers"]


@needs_inputs
def test_the_option_takes_auto_or_a_class_only() -> None:
    from test_nixos_module import evaluation_error

    error = evaluation_error(
        f"import {Path(__file__).resolve().parents[2] / 'hosts' / 'dmz'}",
        '{ lib, ... }: { services.ibgpTunnel.dn42Peers.peer1.latency = lib.mkForce "fast"; }',
    )
    assert "services.ibgpTunnel.dn42Peers.peer1.latency" in error


# --- doctor ------------------------------------------------------------------------


def _doctor(tmp_path: Path, outputs: dict[str, Output]) -> list[str]:
    from ibgp_tunnel.doctor.checks.dn42latency import check_dn42_latency
    from ibgp_tunnel.doctor.live import parse_snapshot
    from ibgp_tunnel.doctor.parse_bird import BirdStatus
    from ibgp_tunnel.doctor.run import plan_expectations

    exp = plan_expectations(auto_plan(tmp_path), "dmz")
    assert exp.latency_auto == {"peer1": "dn42latency_peer1"}
    live = parse_snapshot(Snapshot(latency=outputs))
    live.bird = BirdStatus("3.1.8", up=True, recovering=False, recovery_detail="")
    return [c.line() for c in check_dn42_latency(exp, live)]


def _eval(stdout: str, returncode: int = 0, stderr: str = "") -> Output:
    return Output(("birdc", "eval", "dn42latency_peer1"), returncode, stdout, stderr)


@pytest.mark.parametrize("stdout", ["4\n", "BIRD 3.1.8 ready.\n4\n"])
def test_doctor_shows_the_class_bird_holds(tmp_path: Path, stdout: str) -> None:
    (line,) = _doctor(tmp_path, {"peer1": _eval(stdout)})
    assert "dn42.latency peer1" in line and "(64511,4)" in line and line.startswith("ok")


def test_doctor_warns_of_the_unmeasured_worst_class(tmp_path: Path) -> None:
    (line,) = _doctor(tmp_path, {"peer1": _eval("9\n")})
    assert line.startswith("warn") and UNIT in line


@pytest.mark.parametrize(
    "output",
    [_eval("", 1, "syntax error, unexpected CF_SYM_UNDEFINED"), _eval("(64511,4)\n")],
)
def test_doctor_fails_when_bird_holds_no_class(tmp_path: Path, output: Output) -> None:
    (line,) = _doctor(tmp_path, {"peer1": output})
    assert line.startswith("fail"), line
    assert "no measured latency class" in line


def test_a_saved_snapshot_keeps_the_classes(tmp_path: Path) -> None:
    from ibgp_tunnel.doctor.saved import load, save

    snapshot = Snapshot(time=1.0, latency={"peer1": _eval("4\n")})
    save(snapshot, tmp_path / "saved")
    assert load(tmp_path / "saved").latency == snapshot.latency


# --- rules: auto needs an interface to ping through -----------------------------------


def test_auto_without_interface_or_tunnel_is_a_plan_error(tmp_path: Path) -> None:
    data = tomllib.loads(auto_plan(tmp_path).read_text())
    peer = data["hosts"]["dmz"]["dn42_peers"]["peer1"]
    for key in ("interface", "public_key", "link_local", "preshared_key", "ipv4", "peer_ipv4"):
        peer.pop(key, None)
    peer.pop("persistent_keepalive", None)
    peer["neighbor"] = "172.20.42.1"
    findings = [f"{f.path}: {f.message}" for f in check_data(data)]
    assert any("peer1.latency" in line and "interface" in line for line in findings), findings
    # With the interface named it is fine.
    peer["interface"] = "eth1"
    findings = [f"{f.path}: {f.message}" for f in check_data(data)]
    assert not any("peer1.latency" in line for line in findings), findings


def test_auto_without_interface_or_tunnel_is_a_spec_problem() -> None:
    peer = 's.dn42Peers.peer1 // { latency = "auto"; tunnel = null; interface = null; }'
    found = problems_of(f"let s = {SPEC}; in s // {{ dn42Peers.peer1 = {peer}; }}")
    assert any(
        p["path"].endswith("dn42Peers.peer1.latency") and "interface" in p["message"] for p in found
    ), found

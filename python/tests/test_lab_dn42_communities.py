"""DN42 communities both ways in the lab (issue 22, items 1 and 5): the example
plan's reflector announcing a DN42 prefix of its own and exporting it to peer1,
whose latency is "auto"; the lab's DN42 peer (its own BIRD behind the module's
WireGuard tunnel) sees our (64511, x) link communities on it, and the latency
class follows the round-trip time measured over the tunnel (a UDP relay adds delay
between the peer and us: udpdelay.py), on both sides of the session.

BIRD 3 unless IBGP_TUNNEL_BIRD_DIR names another (run again with
.cache/bird/bird2/bin for BIRD 2). Its own lab directory and namespace prefix,
beside the other lab tests'."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from labtools import (
    TEST_LAB_DIR,
    TEST_PREFIX,
    Lab,
    birdc,
    lab_up,
    poll,
    run_doctor,
    skip_reason,
)
from test_dn42_communities import OWN_V4, OWN_V6, exporting_plan

from ibgp_tunnel.lab import dn42lab, dn42latency, netns

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))

LAB_DIR = TEST_LAB_DIR + "-dn42c"
PREFIX = TEST_PREFIX[:-1] + "c-"
REFLECTOR, CLIENT, PEER = "dmz", "pve", "dn42"
# Polled conditions get a generous deadline on a loaded machine; timings go in bench/.
DEADLINE = 90


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, dn42lab.Dn42Lab]]:
    plan_path = exporting_plan(tmp_path_factory.mktemp("dn42c-plan"), latency="auto")
    with lab_up(plan_path, LAB_DIR, PREFIX) as env:
        yield env, dn42lab.Dn42Lab(Path(LAB_DIR), env.topo)


@pytest.mark.parametrize("prefix", [OWN_V4, OWN_V6])
def test_the_dn42_peer_sees_our_link_communities_on_our_routes(
    lab: tuple[Lab, dn42lab.Dn42Lab], prefix: str
) -> None:
    env, _ = lab

    def received() -> str | None:
        out = birdc(env.st, PEER, "show", "route", prefix, "all")
        return out if prefix in out else None

    out = poll(received, DEADLINE, f"{prefix} at the DN42 peer")
    # hosts/plan.toml's peer1: bandwidth 24, crypto 34 from the WireGuard tunnel;
    # latency the class BIRD holds now (the file the measurement writes).
    assert f"(64511,{_installed_class(env)}) (64511,24) (64511,34)" in out, out
    # Only what the export sets hold: the reflector's other statics (cf) stay home.
    assert "104.16.0.0/13" not in birdc(env.st, PEER, "show", "route", "all")


# --- latency = "auto" ------------------------------------------------------------------

PEER_V4 = "172.21.80.0/24"  # the lab peer's announcement (test_lab_dn42)
DELAY_MS = 60
RELAY_PORT = 41000


def _installed_class(env: Lab) -> int:
    text = dn42latency.lab_file(env.lab_dir, REFLECTOR, "x/peer1.conf").read_text()
    found = re.search(r"^define dn42latency_peer1 = ([1-9]);$", text, re.MULTILINE)
    assert found, text
    return int(found[1])


def _rtt(env: Lab) -> float:
    return float(dn42latency.lab_file(env.lab_dir, REFLECTOR, "x/peer1.conf.rtt").read_text())


def _class(ms: float) -> int:
    """DN42's table, independently of the script: 1 under e^1 ms, x under e^x, 9 beyond."""
    return next((x for x in range(1, 9) if ms < math.exp(x)), 9)


def _measure(env: Lab) -> subprocess.CompletedProcess[str]:
    socket = Path(env.st.nodes[REFLECTOR]["bird_socket"])
    done = dn42latency.measure(env.lab_dir, REFLECTOR, env.ns(REFLECTOR), socket)
    assert done.returncode == 0, done.stderr
    return done


def _tagged_everywhere(env: Lab, latency: int) -> None:
    """Both directions carry the class: the peer's route at our client, ours at the peer."""
    mark = f"(64511,{latency}) (64511,24) (64511,34)"
    for node, prefix in ((CLIENT, PEER_V4), (PEER, OWN_V4)):
        poll(
            lambda n=node, p=prefix: mark in birdc(env.st, n, "show", "route", p, "all") or None,
            DEADLINE,
            f"{mark} on {prefix} at {node}",
        )


@contextmanager
def delayed(env: Lab, ms: int) -> Iterator[None]:
    """Every datagram of the peer's tunnel held ms/2 each way (udpdelay.py between the
    peer's wireguard-go and the reflector: this kernel has no netem)."""
    (peer,) = env.topo.dn42_peers
    assert peer.tunnel is not None
    ns, rundir = env.ns(PEER), env.lab_dir / "nodes" / PEER / "run"
    listen = peer.tunnel.peer_underlay
    port = env.artifacts[REFLECTOR]["wireguard"]["dn42-peer1"]["listenPort"]
    endpoint = f"{peer.tunnel.reflector_underlay}:{port}"
    relay_script = str(Path(__file__).with_name("udpdelay.py"))
    upstream = [peer.tunnel.reflector_underlay, str(port), str(ms / 2000)]
    relay = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            ns,
            sys.executable,
            relay_script,
            listen,
            str(RELAY_PORT),
            *upstream,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    wg = ["wg", "set", dn42lab.PEER_INTERFACE, "peer", _reflector_key(env)]
    # A packet from the peer's new source makes the reflector's WireGuard roam to it.
    roam = ["ping", "-c", "2", "-I", dn42lab.PEER_INTERFACE, peer.tunnel.reflector_link_local]
    try:
        assert relay.stdout is not None and relay.stdout.readline().strip() == "ready"
        in_ns(ns, rundir, [*wg, "endpoint", f"{listen}:{RELAY_PORT}"])
        in_ns(ns, rundir, roam)
        yield
    finally:
        in_ns(ns, rundir, [*wg, "endpoint", endpoint])
        relay.terminate()
        relay.wait(timeout=10)
        in_ns(ns, rundir, roam)


def _reflector_key(env: Lab) -> str:
    out = in_ns(
        env.ns(PEER),
        env.lab_dir / "nodes" / PEER / "run",
        ["wg", "show", dn42lab.PEER_INTERFACE, "peers"],
    )
    (key,) = out.split()
    return key


def in_ns(ns: str, rundir: Path, argv: list[str]) -> str:
    return netns.ns_run(ns, argv, run_dir=rundir).stdout


def test_latency_auto_sets_the_measured_class(lab: tuple[Lab, dn42lab.Dn42Lab]) -> None:
    env, _ = lab
    # Until measured: the worst class.
    assert _installed_class(env) == 9
    _measure(env)
    fast = _installed_class(env)
    assert fast == _class(_rtt(env)), (_rtt(env), fast)
    _tagged_everywhere(env, fast)
    # The peer's tunnel traffic held DELAY_MS per round trip.
    with delayed(env, DELAY_MS):
        done = _measure(env)
        slow = _installed_class(env)
        assert _rtt(env) >= DELAY_MS
        assert slow == _class(_rtt(env)) and slow > fast, (_rtt(env), fast, slow)
        assert f"class {fast} -> {slow}" in done.stdout
        _tagged_everywhere(env, slow)
        # Measured again in the same class: the file and BIRD's config stay.
        before = dn42latency.lab_file(env.lab_dir, REFLECTOR, "x/peer1.conf").stat().st_mtime_ns
        again = _measure(env)
        if _class(_rtt(env)) == slow:
            assert "reconfigured" not in again.stdout, again.stdout
            conf = dn42latency.lab_file(env.lab_dir, REFLECTOR, "x/peer1.conf")
            assert conf.stat().st_mtime_ns == before
    _measure(env)
    assert _installed_class(env) == _class(_rtt(env))
    assert _installed_class(env) < slow


def test_doctor_shows_the_measured_class(lab: tuple[Lab, dn42lab.Dn42Lab]) -> None:
    env, _ = lab
    _measure(env)
    done = run_doctor(REFLECTOR, LAB_DIR, PREFIX)
    report = json.loads(done.stdout)
    (check,) = [c for c in report["checks"] if c["id"] == "dn42.latency peer1"]
    installed = _installed_class(env)
    assert f"(64511,{installed})" in check["summary"], check
    assert check["evidence"] == f"birdc eval dn42latency_peer1: {installed}", check
    assert check["status"] == ("warn" if installed == 9 else "ok"), check

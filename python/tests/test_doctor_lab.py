"""`ibgp-tunnel doctor` against a real lab: healthy hosts give all ok, and each
thing broken on purpose is named, with its fix, by the first failing line.

The lab is the tests' own (state directory <test lab dir>-doctor, namespaces
<test prefix>d-*, by default /run/ibgp-tunnel-test-lab-doctor and ibgttd-*), so neither
a lab the user has up nor the other lab tests' lab is touched.
It runs the BIRD that IBGP_TUNNEL_BIRD_DIR names (BIRD 3 from scripts/setup by
default, see labtools); run it again with IBGP_TUNNEL_BIRD_DIR pointing at a BIRD 2
(.cache/bird/bird2/bin for 2.17, as CI does, or /usr/sbin for Debian 12's 2.0.12).
Nothing waits for a fixed time: every condition is polled with a generous deadline.

With IBGP_TUNNEL_DOCTOR_RECORD=DIR (a new directory), every snapshot doctor diagnosed is saved under
DIR/bird-<version>/<case>/<host>: that is how python/tests/data/doctor was recorded
(BIRD 3.1.8 and Debian 12's 2.0.12).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from labtools import (
    EXAMPLE_PLAN,
    REPO,
    TEST_LAB_DIR,
    TEST_PREFIX,
    environment,
    poll,
    run_doctor,
    skip_reason,
    with_dn42_import_limit,
)

from ibgp_tunnel import keys
from ibgp_tunnel.doctor import saved
from ibgp_tunnel.doctor.collect import NamespaceTarget
from ibgp_tunnel.doctor.expect import Expectations
from ibgp_tunnel.doctor.parse_drift import reconfigured_ago
from ibgp_tunnel.doctor.result import Check, Status
from ibgp_tunnel.doctor.run import examine, lab_host, plan_expectations
from ibgp_tunnel.lab import faults, firewall, location, netns
from ibgp_tunnel.lab.artifacts import saved_artifacts
from ibgp_tunnel.lab.down import down
from ibgp_tunnel.lab.state import LabState
from ibgp_tunnel.lab.up import apply_nft, firewall_script_for, node_dir, reconfigure_bird, up

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))

# Beside the other lab tests' lab, named after it, so IBGP_TUNNEL_TEST_LAB_DIR and
# IBGP_TUNNEL_TEST_LAB_PREFIX move both (two test runs can share a machine).
LAB_DIR = TEST_LAB_DIR + "-doctor"
PREFIX = TEST_PREFIX[:-1] + "d-"
REFLECTOR, CLIENT = "dmz", "pve"
IMPORT_LIMIT = 20
RECOVERY_WAIT = 300
DEADLINE = 90
FAULT_TABLE = PREFIX + "fault"
RECORD = os.environ.get("IBGP_TUNNEL_DOCTOR_RECORD")
PATH_MTU = 1400
PMTU_HOLE = "MTU black hole on the way to"


@dataclass
class Lab:
    st: LabState
    plan_path: Path
    artifacts: dict[str, dict[str, Any]]
    expect: dict[str, Expectations] = field(default_factory=dict)
    targets: dict[str, NamespaceTarget] = field(default_factory=dict)
    bird: str = ""

    def ns(self, host: str) -> str:
        return str(self.st.nodes[host]["netns"])

    def run_dir(self, host: str) -> Path:
        return Path(self.st.nodes[host]["run_dir"])


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    plan_path = tmp_path_factory.mktemp("doctor") / "plan.toml"
    # A long recovery wait, so graceful restart recovery outlasts a slow doctor run.
    plan_path.write_text(
        with_dn42_import_limit(EXAMPLE_PLAN.read_text(), IMPORT_LIMIT)
        + f"\n[tuning]\nimport_limit = {IMPORT_LIMIT}\ngraceful_restart_wait = {RECOVERY_WAIT}\n"
    )
    # The example's test keys, so the running keys are the plan's public keys.
    keys = str(REPO / "secrets" / "test-age-key.txt")
    with environment(
        **{location.LAB_DIR_ENV: LAB_DIR, location.PREFIX_ENV: PREFIX, "SOPS_AGE_KEY_FILE": keys}
    ):
        down()  # what an interrupted run of these tests left behind, nothing else
        try:
            st = up(plan_path, timeout=120, secrets_dir=REPO / "secrets" / "test")
            lab = Lab(st, plan_path, saved_artifacts(Path(LAB_DIR)))
            for host in (REFLECTOR, CLIENT):
                lab.expect[host] = plan_expectations(plan_path, host)
                lab.targets[host] = lab_host(host, Path(LAB_DIR), "birdc").target
            status = lab.targets[CLIENT].birdc(["show", "status"]).stdout
            lab.bird = "bird-" + next(
                (line.split()[1] for line in status.splitlines() if line.endswith("ready.")),
                "unknown",
            )
            yield lab
        finally:
            down()


def _doctor(lab: Lab, host: str, record: str | None = None) -> list[Check]:
    checks, snapshot = examine(lab.expect[host], lab.targets[host])
    if RECORD and record:
        saved.save(snapshot, Path(RECORD) / lab.bird / record / host)
    return checks


def _first_failure(checks: list[Check]) -> Check | None:
    return next((c for c in checks if c.status is Status.FAIL), None)


def _not_ok(checks: list[Check]) -> list[str]:
    return [c.line() for c in checks if c.status is not Status.OK]


def _wait_healthy(lab: Lab) -> None:
    def healthy() -> bool:
        return not any(_not_ok(_doctor(lab, host)) for host in (REFLECTOR, CLIENT))

    try:
        poll(healthy, DEADLINE * 2, "doctor finds nothing wrong on either host", interval=1)
    except AssertionError as error:
        report = {host: _not_ok(_doctor(lab, host)) for host in (REFLECTOR, CLIENT)}
        raise AssertionError(f"{error}: {json.dumps(report, indent=1)}") from None


# --- healthy ---------------------------------------------------------------------------


def _state_of(lab: Lab, host: str) -> dict[str, str]:
    """What doctor must leave as it found it: rules, addresses, routes, links, tunnel
    configuration (without the counters and handshake times that move by themselves),
    sysctls, BIRD's protocols (without their timers)."""

    def inside(*argv: str) -> str:
        return netns.ns_run(lab.ns(host), argv, run_dir=lab.run_dir(host)).stdout

    wg = "\n".join(
        "\t".join(line.split("\t")[:5]) for line in inside("wg", "show", "all", "dump").splitlines()
    )
    protocols = lab.targets[host].birdc(["show", "protocols"]).stdout
    return {
        "nft": inside("nft", "list", "ruleset"),
        "addr": inside("ip", "address"),
        "route4": inside("ip", "-4", "route"),
        "route6": inside("ip", "-6", "route"),
        "link": inside("ip", "link"),
        "wg": wg,
        "sysctl": inside("sysctl", "-a", "--pattern", r"\.(forwarding|rp_filter|accept_ra)$"),
        "protocols": "\n".join(" ".join(line.split()[:4]) for line in protocols.splitlines()[1:]),
    }


@pytest.mark.parametrize("host", [REFLECTOR, CLIENT])
def test_healthy_lab_host_is_all_ok_and_left_unchanged(lab: Lab, host: str) -> None:
    _wait_healthy(lab)
    before = _state_of(lab, host)
    done = run_doctor(host, LAB_DIR)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] and report["first_failure"] is None
    statuses = {c["id"]: c["status"] for c in report["checks"]}
    assert set(statuses.values()) == {"ok"}, statuses
    # Every area was looked at, not skipped.
    for area in (
        "bird.running",
        "wireguard.handshake",
        "tunnel.alive wg-ibgp",
        "bgp.session",
        "bfd.session",
        "routes.kernel",
        "firewall.forward",
        "firewall.masquerade",
        "rp_filter",
        "bgp.ipv6-next-hop",
        "tunnel.overlap",
        "tunnel.mtu",
        "tunnel.pmtu",
        "bgp.import-limit",
    ):
        assert any(name.startswith(area) for name in statuses), area
    if host == REFLECTOR:  # the DN42 peer's tunnel is measured too
        assert "tunnel.alive dn42-peer1" in statuses
    assert _state_of(lab, host) == before
    if RECORD:
        _doctor(lab, host, "healthy")


# --- breakages -------------------------------------------------------------------------


def _inside(lab: Lab, host: str, *argv: str) -> None:
    netns.ns_run(lab.ns(host), argv, run_dir=lab.run_dir(host))


def _fault_table(lab: Lab, host: str, body: str) -> None:
    script = firewall.replace_table("inet", FAULT_TABLE, body)
    apply_nft(lab.ns(host), script, node_dir(Path(LAB_DIR), host) / "doctor-fault.nft")


def _restore_firewall(lab: Lab, host: str) -> None:
    script = firewall_script_for(lab.artifacts[host])
    apply_nft(lab.ns(host), script, node_dir(Path(LAB_DIR), host) / "nftables.nft")


def _block_bfd(lab: Lab) -> None:
    _fault_table(
        lab,
        CLIENT,
        f"table inet {FAULT_TABLE} {{\n  chain input {{\n"
        "    type filter hook input priority filter - 10; policy accept;\n"
        "    udp dport 4784 drop\n  }\n}\n",
    )


def _no_forward_rules(lab: Lab) -> None:
    script = firewall_script_for(lab.artifacts[REFLECTOR], forward_rules="")
    apply_nft(lab.ns(REFLECTOR), script, node_dir(Path(LAB_DIR), REFLECTOR) / "doctor-fault.nft")


def _without_ipv6_next_hop(lab: Lab) -> None:
    """The write-up's pitfall 4 on the reflector: no global IPv6 on its tunnel and no
    `next hop address` in its IPv6 channel."""
    config = lab.artifacts[REFLECTOR]["birdConfig"]
    lines = [line for line in config.splitlines() if "next hop address" not in line]
    reconfigure_bird(Path(LAB_DIR), REFLECTOR, "\n".join(lines) + "\n")
    _inside(lab, REFLECTOR, "ip", "address", "del", "fdb7:1dec:4d21:ff::1/64", "dev", "wg-ibgp")
    # BIRD 2.0.12 keeps the old next hop on a reconfigure; a new session (as after a
    # reboot, where the write-up met the pitfall) has none.
    _restart_session(lab)


def _restart_session(lab: Lab) -> None:
    out = lab.targets[REFLECTOR].birdc(["restart", "ibgp_pve"])
    assert "restarted" in out.stdout, out.stdout + out.stderr


def _restore_ipv6_next_hop(lab: Lab) -> None:
    proc = netns.ns_run(
        lab.ns(REFLECTOR),
        ["ip", "address", "add", "fdb7:1dec:4d21:ff::1/64", "dev", "wg-ibgp", "nodad"],
        check=False,
    )
    assert proc.returncode == 0 or "exists" in proc.stderr, proc.stderr
    reconfigure_bird(Path(LAB_DIR), REFLECTOR, lab.artifacts[REFLECTOR]["birdConfig"])
    _restart_session(lab)


def _swap_peer_key(lab: Lab) -> None:
    """The client's tunnel gets another public key for the reflector."""
    peer = lab.artifacts[CLIENT]["wireguard"]["wg-ibgp"]["peers"][0]
    wrong = keys.public_key_of(keys.generate_private_key())
    _inside(lab, CLIENT, "wg", "set", "wg-ibgp", "peer", peer["publicKey"], "remove")
    _inside(
        lab,
        CLIENT,
        "wg",
        "set",
        "wg-ibgp",
        "peer",
        wrong,
        "endpoint",
        peer["endpoint"],
        "allowed-ips",
        ",".join(peer["allowedIPs"]),
        "persistent-keepalive",
        "25",
    )


def _wrong_asn(lab: Lab) -> None:
    config = lab.artifacts[CLIENT]["birdConfig"]
    wrong = config.replace(
        "neighbor 10.255.255.2 as OWNAS;", "neighbor 10.255.255.2 as 4242420039;"
    )
    assert wrong != config
    reconfigure_bird(Path(LAB_DIR), CLIENT, wrong)


def _flush_kernel_routes(lab: Lab) -> None:
    """Someone else removes BIRD's IPv4 routes (BIRD puts them back at its next scan)."""
    _inside(lab, CLIENT, "ip", "-4", "route", "flush", "proto", "bird")


def _restart_without_reflector(lab: Lab) -> None:
    """The reflector's BIRD is down for good, and the client's BIRD restarts with -R:
    recovery waits for an End-of-RIB that does not come."""
    faults.stop_bird(lab.st, REFLECTOR)
    faults.kill_bird(lab.st, CLIENT)
    faults.start_bird(lab.st, CLIENT, recovery=True)


def _reflector_back(lab: Lab) -> None:
    faults.start_bird(lab.st, REFLECTOR)


# What the client's first line says when nothing comes back from the reflector.
DEAD_FROM_CLIENT = (
    "the tunnel is dead",
    "UDP 51821",
    "203.0.113.10:51821",
    "provider",
    "own firewall (nftables",
    "`ibgp-tunnel doctor` on dmz",
)


@dataclass(frozen=True)
class Breakage:
    name: str
    # host doctor runs on -> (id the first failing line starts with, words it must hold)
    expect: dict[str, tuple[str, tuple[str, ...]]]
    brk: Callable[[Lab], None]
    fix: Callable[[Lab], None]
    # Break again before each look (for what the system repairs by itself).
    repeat: bool = False
    # host -> further checks that must fail too (after the first)
    also: dict[str, tuple[str, ...]] = field(default_factory=dict)


# --- drift (issue 21, item 3): running state that is not what the plan renders ----------

HAND_MADE = "\nprotocol static hand_made {\n  ipv4;\n  route 192.0.2.0/24 blackhole;\n}\n"


def _bird_conf(host: str) -> Path:
    return node_dir(Path(LAB_DIR), host) / "bird.conf"


def _edit_bird_conf_unloaded(lab: Lab) -> None:
    """A hand edit of the client's bird.conf, not loaded (no `birdc configure`)."""
    conf = _bird_conf(CLIENT)
    conf.write_text(conf.read_text() + HAND_MADE)


def _edit_bird_conf_loaded(lab: Lab) -> None:
    """The client's bird.conf edited by hand and loaded: an extra static protocol."""
    reconfigure_bird(Path(LAB_DIR), CLIENT, lab.artifacts[CLIENT]["birdConfig"] + HAND_MADE)


def _restore_bird_conf(lab: Lab) -> None:
    reconfigure_bird(Path(LAB_DIR), CLIENT, lab.artifacts[CLIENT]["birdConfig"])


def _rewrite_bird_conf_unloaded(lab: Lab) -> None:
    """The plan's own bird.conf written again, but BIRD not told (as a deploy whose
    reload failed): once BIRD's last reconfiguration is a moment old, so the file's
    time is after it on BIRD's clock too."""

    def settled() -> bool:
        status = lab.targets[CLIENT].birdc(["show", "status"]).stdout
        ago = reconfigured_ago(status)
        return ago is not None and ago > 3

    poll(settled, DEADLINE, "BIRD's last reconfiguration is 3 s old", interval=0.5)
    conf = _bird_conf(CLIENT)
    conf.write_text(conf.read_text())


def _configure_bird(lab: Lab) -> None:
    out = lab.targets[CLIENT].birdc(["configure"]).stdout
    assert "Reconfigur" in out, out


def _tunnel_peer(lab: Lab, host: str) -> dict[str, Any]:
    peer: dict[str, Any] = lab.artifacts[host]["wireguard"]["wg-ibgp"]["peers"][0]
    return peer


def _set_allowed_ips(lab: Lab, allowed: str) -> None:
    key = _tunnel_peer(lab, CLIENT)["publicKey"]
    _inside(lab, CLIENT, "wg", "set", "wg-ibgp", "peer", key, "allowed-ips", allowed)


HAND_PEER = keys.public_key_of(keys.generate_private_key())


def _add_peer(lab: Lab) -> None:
    _inside(
        lab, REFLECTOR, "wg", "set", "wg-ibgp", "peer", HAND_PEER, "allowed-ips", "192.0.2.0/24"
    )


def _remove_peer(lab: Lab) -> None:
    _inside(lab, REFLECTOR, "wg", "set", "wg-ibgp", "peer", HAND_PEER, "remove")


def _add_nft_rule(lab: Lab) -> None:
    _inside(
        lab,
        CLIENT,
        "nft",
        "add",
        "rule",
        "inet",
        "ibgp-tunnel",
        "postrouting",
        "ip",
        "daddr",
        "198.51.100.7",
        "accept",
    )


BREAKAGES = [
    Breakage(
        "udp-blocked-on-reflector",
        {
            REFLECTOR: ("firewall.port udp/51821", ("drops WireGuard", "UDP 51821", "pitfall 1")),
            # Issue 21: the client measures the dead tunnel, not BFD's port.
            CLIENT: ("tunnel.alive wg-ibgp", DEAD_FROM_CLIENT),
        },
        lambda lab: faults.block_tunnel(lab.st, REFLECTOR),
        lambda lab: faults.unblock_tunnel(lab.st, REFLECTOR),
        also={REFLECTOR: ("tunnel.alive wg-ibgp",)},
    ),
    Breakage(
        "forward-accept-deleted",
        {REFLECTOR: ("firewall.forward wg-ibgp", ('iifname "wg-ibgp" accept', "pitfall 2"))},
        _no_forward_rules,
        lambda lab: _restore_firewall(lab, REFLECTOR),
    ),
    Breakage(
        "masquerade-dropped",
        {CLIENT: ("firewall.masquerade vmbr0 -> wg-ibgp", ("not masqueraded", "pitfall 3"))},
        lambda lab: _inside(lab, CLIENT, "nft", "delete", "table", "inet", "ibgp-tunnel"),
        lambda lab: _restore_firewall(lab, CLIENT),
    ),
    Breakage(
        "ipv6-next-hop-removed",
        {
            REFLECTOR: ("tunnel.addresses wg-ibgp", ("global IPv6", "pitfall 4")),
            CLIENT: ("bgp.ipv6-next-hop ibgp_dmz", ("IPv6", "pitfall 4", "dmz")),
        },
        _without_ipv6_next_hop,
        _restore_ipv6_next_hop,
    ),
    Breakage(
        "strict-rp-filter",
        {CLIENT: ("rp_filter wg-ibgp", ("strict reverse-path", "rp_filter=2"))},
        lambda lab: _inside(lab, CLIENT, "sysctl", "-w", "net.ipv4.conf.all.rp_filter=1"),
        lambda lab: _inside(lab, CLIENT, "sysctl", "-w", "net.ipv4.conf.all.rp_filter=0"),
    ),
    Breakage(
        "peer-key-swapped",
        {CLIENT: ("wireguard.peer-key wg-ibgp dmz", ("public key", "ibgp-tunnel keys"))},
        _swap_peer_key,
        lambda lab: faults.restart_wireguard(lab.st, CLIENT),
    ),
    Breakage(
        "bird-stopped",
        {CLIENT: ("bird.running", ("BIRD is not running", "systemctl start bird"))},
        lambda lab: faults.stop_bird(lab.st, CLIENT),
        lambda lab: faults.start_bird(lab.st, CLIENT),
    ),
    Breakage(
        "wrong-peer-asn",
        {
            CLIENT: ("bgp.session ibgp_dmz", ("Bad peer AS", "4242420039", "the plan says")),
            REFLECTOR: ("bgp.session ibgp_pve", ("Received: Bad peer AS", "pve")),
        },
        _wrong_asn,
        lambda lab: reconfigure_bird(Path(LAB_DIR), CLIENT, lab.artifacts[CLIENT]["birdConfig"]),
    ),
    Breakage(
        "bfd-blocked",
        {CLIENT: ("firewall.port udp/4784 wg-ibgp", ("drops BFD", "UDP 4784"))},
        _block_bfd,
        lambda lab: _fault_table(lab, CLIENT, ""),
    ),
    Breakage(
        "overlapping-address",
        {CLIENT: ("tunnel.overlap wg-ibgp 10.255.255.0/30", ("overlaps vmbr0", "renumber"))},
        lambda lab: _inside(lab, CLIENT, "ip", "address", "add", "10.255.255.5/24", "dev", "vmbr0"),
        lambda lab: _inside(lab, CLIENT, "ip", "address", "del", "10.255.255.5/24", "dev", "vmbr0"),
    ),
    Breakage(
        "uplink-mtu-lowered",
        {CLIENT: ("tunnel.mtu wg-ibgp", ("too big for the path", "mtu 1340"))},
        lambda lab: _inside(lab, CLIENT, "ip", "link", "set", "wan0", "mtu", "1400"),
        lambda lab: _inside(lab, CLIENT, "ip", "link", "set", "wan0", "mtu", "1500"),
    ),
    # Issue 21 item 2, the path MTU: the path between the hosts (the inet router)
    # carries 1400 bytes and drops ICMP "fragmentation needed"/"packet too big", a
    # black hole. WireGuard pads to 16 bytes: 1328 is the largest tunnel packet that
    # fits 1400 with 60 bytes of overhead; the mtu to set is 1400 - 60.
    Breakage(
        "path-mtu-black-hole",
        {
            host: ("tunnel.pmtu wg-ibgp", (PMTU_HOLE, "largest that passes is 1328", "mtu 1340"))
            for host in (CLIENT, REFLECTOR)
        },
        lambda lab: faults.shrink_path_mtu(lab.st, PATH_MTU),
        lambda lab: faults.restore_path_mtu(lab.st),
    ),
    # Beyond the issue's list: the kernel losing BIRD's routes, and graceful restart
    # recovery that cannot end.
    Breakage(
        "kernel-routes-flushed",
        {CLIENT: ("routes.kernel kernel4", ("only", "birdc reload out kernel4"))},
        _flush_kernel_routes,
        lambda lab: None,
        repeat=True,
    ),
    Breakage(
        "recovery-without-reflector",
        {
            CLIENT: (
                "bgp.session ibgp_dmz",
                ("Connection refused", "run `ibgp-tunnel doctor` on dmz"),
            )
        },
        _restart_without_reflector,
        _reflector_back,
        also={CLIENT: ("bird.recovery",)},
    ),
    # Drift (issue 21, item 3): BIRD's config, WireGuard's peers, our nftables table
    # changed by hand; the helpers are above BREAKAGES.
    Breakage(
        "bird-config-edited-not-loaded",
        {
            CLIENT: (
                "drift.bird.config",
                (
                    "has not loaded it yet",
                    "+ protocol static hand_made {",
                    "do not `birdc configure`",
                ),
            )
        },
        _edit_bird_conf_unloaded,
        _restore_bird_conf,
    ),
    Breakage(
        "bird-config-edited-and-loaded",
        {
            CLIENT: (
                "drift.bird.config",
                (
                    "BIRD runs a config file that differs",
                    "+ route 192.0.2.0/24 blackhole;",
                    "nixos-rebuild switch",
                    "systemctl reload bird",
                ),
            )
        },
        _edit_bird_conf_loaded,
        _restore_bird_conf,
    ),
    Breakage(
        "bird-config-written-not-loaded",
        {CLIENT: ("drift.bird.loaded", ("BIRD last read its config", "systemctl reload bird"))},
        _rewrite_bird_conf_unloaded,
        _configure_bird,
    ),
    Breakage(
        "wireguard-allowed-ips-changed",
        {
            CLIENT: (
                "drift.wireguard wg-ibgp dmz allowed-ips",
                ("+ 192.0.2.0/24", "allowed-ips 0.0.0.0/1,128.0.0.0/1,::/1,8000::/1"),
            )
        },
        lambda lab: _set_allowed_ips(lab, "192.0.2.0/24"),
        lambda lab: _set_allowed_ips(lab, ",".join(_tunnel_peer(lab, CLIENT)["allowedIPs"])),
    ),
    Breakage(
        "wireguard-peer-added",
        {
            REFLECTOR: (
                "drift.wireguard wg-ibgp extra-peer",
                ("added by hand", f"wg set wg-ibgp peer {HAND_PEER} remove"),
            )
        },
        _add_peer,
        _remove_peer,
    ),
    Breakage(
        "nft-rule-added",
        {
            CLIENT: (
                "drift.nftables inet ibgp-tunnel",
                ("chain postrouting: + ip daddr 198.51.100.7 accept", "systemctl reload nftables"),
            )
        },
        _add_nft_rule,
        lambda lab: _restore_firewall(lab, CLIENT),
    ),
    # Issue 21, tunnel liveness: the port dropped between the hosts (the reflector's
    # provider firewall, in the lab's inet namespace), neither host's own firewall.
    Breakage(
        "udp-blocked-by-provider",
        {
            CLIENT: ("tunnel.alive wg-ibgp", DEAD_FROM_CLIENT),
            REFLECTOR: (
                "tunnel.alive wg-ibgp",
                ("UDP 51821", "pve dials this host", "provider", "own firewall (nftables)"),
            ),
        },
        lambda lab: faults.block_provider(lab.st, REFLECTOR, "wg-ibgp"),
        lambda lab: faults.unblock_provider(lab.st),
        also={CLIENT: ("bgp.session ibgp_dmz", "bfd.session ibgp_dmz")},
    ),
    # Last: BIRD keeps a hit limit marked until the session restarts, and the lab goes
    # down after it anyway.
    Breakage(
        "import-limit-flooded",
        {
            REFLECTOR: (
                "bgp.import-limit dn42_peer1 ipv4",
                ("import limit (20) is hit", "import_limit"),
            )
        },
        lambda lab: faults.announce_extra_routes(lab.st, IMPORT_LIMIT + 10, IMPORT_LIMIT + 10),
        lambda lab: None,
    ),
]


@pytest.mark.parametrize("breakage", BREAKAGES, ids=[b.name for b in BREAKAGES])
def test_first_failing_line_names_the_breakage(lab: Lab, breakage: Breakage) -> None:
    _wait_healthy(lab)
    breakage.brk(lab)
    try:
        for host, (first_id, words) in breakage.expect.items():
            last: list[Check | None] = [None]

            def named(
                host: str = host,
                first_id: str = first_id,
                words: tuple[str, ...] = words,
                last: list[Check | None] = last,
            ) -> bool:
                if breakage.repeat:
                    breakage.brk(lab)
                first = _first_failure(_doctor(lab, host))
                last[0] = first
                return (
                    first is not None
                    and first.id.startswith(first_id)
                    and all(word in first.line() for word in words)
                )

            try:
                poll(named, DEADLINE, f"doctor on {host} starts with {first_id}", interval=1)
            except AssertionError as error:
                shown = last[0].line() if last[0] else "nothing fails"
                raise AssertionError(f"{error}; its first failing line: {shown}") from None
            if breakage.repeat:
                breakage.brk(lab)
            checks = _doctor(lab, host, breakage.name)
            first = _first_failure(checks)
            assert first is not None and first.id.startswith(first_id), first
            text = first.line()
            for word in words:
                assert word in text, f"{word!r} not in: {text}"
            assert first.fix, "a failing line must say what to do"
            # Everything before it is fine: the first failing line is the cause.
            before = checks[: checks.index(first)]
            assert all(c.status in (Status.OK, Status.SKIP) for c in before), _not_ok(before)
            failing = {c.id for c in checks if c.status is Status.FAIL}
            for also in breakage.also.get(host, ()):
                assert any(name.startswith(also) for name in failing), (also, failing)
            # Behind a dead tunnel, no line sends the user to open BFD's port.
            for check in checks:
                if "because the tunnel is dead" in check.summary:
                    assert "4784" not in check.line(), check.line()
    finally:
        breakage.fix(lab)
    if breakage.name != "import-limit-flooded":
        _wait_healthy(lab)


# --- several clients ---------------------------------------------------------------------

THREE_CLIENTS_PLAN = Path(__file__).resolve().parent / "plans" / "three-clients.toml"
THREE_LAB_DIR = TEST_LAB_DIR + "-doctor3"
THREE_PREFIX = TEST_PREFIX[:-1] + "3-"


def test_three_clients_lab_is_all_ok_then_a_missing_nat_table_is_named(lab: Lab) -> None:
    """One reflector with three tunnels, LANs that reach each other unNATed (their
    masquerade rules leave the announced prefixes alone), and keys the lab generated
    because the plan has none: every host all ok; then the client's NAT table goes."""
    with environment(**{location.LAB_DIR_ENV: THREE_LAB_DIR, location.PREFIX_ENV: THREE_PREFIX}):
        down()
        try:
            st = up(THREE_CLIENTS_PLAN, timeout=120)
            hosts = [name for name, node in st.nodes.items() if node.get("wireguard")]
            assert len(hosts) == 4

            def doctor(host: str) -> subprocess.CompletedProcess[str]:
                return run_doctor(host, THREE_LAB_DIR, THREE_PREFIX)

            def all_ok() -> bool:
                return all(doctor(host).returncode == 0 for host in hosts)

            try:
                poll(all_ok, DEADLINE * 2, "doctor finds nothing wrong on any host", interval=1)
            except AssertionError as error:
                raise AssertionError(f"{error}: {[doctor(h).stdout for h in hosts]}") from None
            for host in hosts:
                report = json.loads(doctor(host).stdout)
                assert {c["status"] for c in report["checks"]} == {"ok"}
                keys = [c for c in report["checks"] if c["id"].startswith("wireguard.peer-key")]
                assert keys and all("the lab's generated keys" in c["summary"] for c in keys)
                if RECORD:
                    target = lab_host(host, Path(THREE_LAB_DIR), "birdc").target
                    _, snapshot = examine(plan_expectations(THREE_CLIENTS_PLAN, host), target)
                    saved.save(snapshot, Path(RECORD) / lab.bird / "three-clients-healthy" / host)
            netns.ns_run(
                st.nodes["home"]["netns"], ["nft", "delete", "table", "inet", "ibgp-tunnel"]
            )
            broken = doctor("home")
            assert broken.returncode == 1
            first = json.loads(broken.stdout)["first_failure"]
            assert first["id"].startswith("firewall.masquerade lan0 -> wg-home"), first
            assert "pitfall 3" in first["summary"]
        finally:
            down()

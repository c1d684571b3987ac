"""Self-service DN42 peering in the lab: `lab up` on plans/autopeer.toml runs the
apply unit in dmz's namespace (state under the lab directory); an outside DN42
router (a namespace in no plan, its own WireGuard key, the fixture registry's
AS4242420999 whose maintainer's test key signs) gets its tunnel and an
Established session from one signed spool entry. Then: the nft set elements;
an include BIRD refuses is rolled back and the session stays up; a request
colliding with the plan's static peer is refused (static peers win); a restart
of the unit after the interfaces are gone (a reboot, as far as the unit can
tell) restores the peering; removal tears down interface, set elements, BIRD
protocol and state.

BIRD 3 unless IBGP_TUNNEL_BIRD_DIR names another (run again with
.cache/bird/bird2/bin for BIRD 2). A lab of its own (directory and prefix)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import autopeer_signers
import pytest
from labtools import (
    EXAMPLE_PLAN,
    REPO,
    TEST_LAB_DIR,
    TEST_PREFIX,
    Lab,
    birdc,
    environment,
    poll,
    skip_reason,
)

from ibgp_tunnel import keys as wgkeys
from ibgp_tunnel import planfile
from ibgp_tunnel.autopeer import nftsets, spool
from ibgp_tunnel.autopeer.request import parse_request
from ibgp_tunnel.autopeer.state import read_peers, read_status
from ibgp_tunnel.lab import autopeerlab, daemons, location
from ibgp_tunnel.lab.artifacts import saved_artifacts
from ibgp_tunnel.lab.down import down
from ibgp_tunnel.lab.topology import build_topology
from ibgp_tunnel.lab.up import find_secrets_dir, start_bird, up

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))

LAB_DIR = TEST_LAB_DIR + "-autopeer"
PREFIX = TEST_PREFIX[:-1] + "a-"
PLAN = REPO / "python" / "tests" / "plans" / "autopeer.toml"
DATA = REPO / "python" / "tests" / "data" / "autopeer-registry"
REFLECTOR, OUR_ASN, OUR_LINK_LOCAL = "dmz", 4242420038, "fe80::38"
ASN, STATIC_ASN = 4242420999, 4242420998  # the fixture's signer; the plan's static peer
OUT_V4, OUT_V6 = "172.20.199.0/27", "fd42:4242:999::/48"  # its route objects
DEADLINE = 90
CLI = [sys.executable, "-m", "ibgp_tunnel.cli", "dn42", "autopeer"]


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with environment(
        **{
            location.LAB_DIR_ENV: LAB_DIR,
            location.PREFIX_ENV: PREFIX,
            location.DN42_REGISTRY_ENV: str(DATA / "data"),
            "SOPS_AGE_KEY_FILE": str(REPO / "secrets" / "test-age-key.txt"),
        }
    ):
        down()
        try:
            plan = planfile.load(PLAN)
            secrets = find_secrets_dir(EXAMPLE_PLAN, planfile.load(EXAMPLE_PLAN))
            st = up(PLAN, timeout=DEADLINE, secrets_dir=secrets)
            topo = build_topology(plan, PREFIX)
            yield Lab(st, plan, saved_artifacts(Path(LAB_DIR)), topo)
        finally:
            down()


def state() -> Any:
    return autopeerlab.state_dir(Path(LAB_DIR), REFLECTOR)


def signed_entry(asn: int, op: str, request: dict[str, Any] | None) -> dict[str, Any]:
    """A spool entry as the web service writes it, signed with the ASN's
    maintainer's test key (ssh-keygen -Y sign)."""
    key_name = "test-ssh-ed25519" if asn == ASN else "test-other-ssh-ed25519"
    return autopeer_signers.signed_entry(asn, request, op, key=key_name, host=REFLECTOR)


def submit(tmp: Path, asn: int, op: str, request: dict[str, Any] | None) -> dict[str, Any]:
    """Spool a signed entry and wait for the unit's answer to it in the ASN's status."""
    entry = signed_entry(asn, op, request)
    spool.write_request(state().spool, entry)

    def answered() -> dict[str, Any] | None:
        status = read_status(state(), asn)
        return status if status and status.get("challenge") == entry["challenge"]["id"] else None

    return poll(answered, DEADLINE, f"AS{asn} {op} answered")


def session(lab: Lab, protocol: str) -> str:
    out = birdc(lab.st, REFLECTOR, "show", "protocols", protocol)
    return out.splitlines()[-1] if protocol in out else ""


def in_reflector(lab: Lab, code: str) -> Any:
    """Python in dmz's namespace and private /run, as the apply unit runs."""
    ns = lab.st.nodes[REFLECTOR]["netns"]
    argv = autopeerlab.ns_argv(
        Path(LAB_DIR), REFLECTOR, ns, [sys.executable, "-c", textwrap.dedent(code)]
    )
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def elements(lab: Lab) -> list[list[str]]:
    return in_reflector(
        lab,
        f"""
        import json
        from ibgp_tunnel.autopeer import nftsets
        print(json.dumps([sorted(nftsets.elements("ibgp-tunnel", n))
              for n in ({nftsets.IFACES_SET!r}, {nftsets.PORTS_SET!r})]))
        """,
    )


@pytest.fixture(scope="module")
def outside(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """AS4242420999's router, peered through one signed spool entry."""
    tmp = tmp_path_factory.mktemp("autopeer")
    router = autopeerlab.add_outside(
        lab.st, REFLECTOR, ASN, announce_ipv4=(OUT_V4,), announce_ipv6=(OUT_V6,)
    )
    status = submit(tmp, ASN, "add", router.request())
    assert status["state"] == "applied", status
    (peer,) = status["peers"]
    autopeerlab.start_outside(lab.st, router, peer, peer["public_key"])
    config = autopeerlab.outside_bird_config(router, OUR_LINK_LOCAL, OUR_ASN)
    lab.st.daemons.append(start_bird(Path(LAB_DIR), router.node, router.netns, config))
    lab.st.save()
    protocol = poll(lambda: _protocol(peer), 30, "its BGP protocol in the status")
    poll(lambda: "Established" in session(lab, protocol), DEADLINE, "the autopeer session")
    return {"router": router, "peer": peer, "protocol": protocol, "tmp": tmp}


def _protocol(peer: dict[str, Any]) -> str | None:
    for p in (read_status(state(), ASN) or {}).get("peers", []):
        if p["name"] == peer["name"] and p.get("protocol"):
            return str(p["protocol"])
    return None


def test_signed_request_gets_tunnel_and_session(lab: Lab, outside: dict[str, Any]) -> None:
    peer, protocol = outside["peer"], outside["protocol"]
    out = birdc(lab.st, REFLECTOR, "show", "protocols", "all", protocol)
    assert "Established" in out and re.search(rf"Neighbor AS:\s+{ASN}\n", out), out
    # What it announces is ROA-valid (the registry's route objects) and imported
    # (its UPDATEs follow the OPEN: polled, not read once after Established).
    poll(lambda: _imported(lab, protocol), 30, "its routes imported")
    assert elements(lab) == [[peer["interface"]], [str(peer["listen_port"])]]
    # Its status shows the session; the operator's list shows the peering.
    poll(lambda: _session_in_status(peer["name"]) == "Established", 30, "status session")
    listed = subprocess.run(
        [*CLI, "list", "--json", "--state-dir", str(state().root)],
        capture_output=True,
        text=True,
        check=True,
    )
    (row,) = json.loads(listed.stdout)
    assert (row["asn"], row["name"], row["maintainer"]) == (ASN, peer["name"], "TEST-AUTOPEER-MNT")


def _imported(lab: Lab, protocol: str) -> bool:
    routes = birdc(lab.st, REFLECTOR, "show", "route", "protocol", protocol)
    return OUT_V4 in routes and OUT_V6 in routes


def test_doctor_checks_the_autopeered_peering(lab: Lab, outside: dict[str, Any]) -> None:
    """`ibgp-tunnel doctor --lab dmz` reads the applied peering from the state and
    checks its tunnel and session as a static DN42 peer's, its firewall elements,
    and the two daemons, the spool and the last outcome. With
    IBGP_TUNNEL_DOCTOR_RECORD=DIR the outputs and the peers/ records are saved
    in DIR/autopeer for test_doctor_autopeer.py (python/tests/data/doctor-autopeer)."""
    from ibgp_tunnel.doctor import saved
    from ibgp_tunnel.doctor.autopeer import pid_unit_state
    from ibgp_tunnel.doctor.result import Status
    from ibgp_tunnel.doctor.run import diagnose, lab_host

    peer, protocol = outside["peer"], outside["protocol"]
    found = lab_host(REFLECTOR, Path(LAB_DIR), "birdc")
    assert found.autopeer_state == state().root and found.autopeer_daemons is not None
    diagnosis = diagnose(
        PLAN,
        REFLECTOR,
        found.target,
        found.generated_keys,
        found.autopeer_state,
        pid_unit_state(found.autopeer_daemons),
    )
    checks = {c.id: c for c in diagnosis.checks}
    interface = peer["interface"]
    wanted = [
        "autopeer.unit ibgp-tunnel-autopeer-web",
        "autopeer.unit ibgp-tunnel-autopeer-apply",
        "autopeer.spool",
        "autopeer.last-apply",
        f"autopeer.firewall AS{ASN} {interface}",
        f"bgp.session {protocol}",
        f"wireguard.interface {interface}",
        f"wireguard.peer-key {interface} AS{ASN}",
    ]
    lines = "\n".join(c.line() for c in diagnosis.checks)
    for check_id in wanted:
        assert check_id in checks, f"no {check_id}:\n{lines}"
        assert checks[check_id].status is Status.OK, checks[check_id].line()
    record = os.environ.get("IBGP_TUNNEL_DOCTOR_RECORD")
    if record:
        where = Path(record) / "autopeer"
        saved.save(diagnosis.snapshot, where / REFLECTOR)
        shutil.copytree(state().peers, where / "peers")


def _session_in_status(name: str) -> str | None:
    for p in (read_status(state(), ASN) or {}).get("peers", []):
        if p["name"] == name:
            return p.get("session")
    return None


def test_include_bird_refuses_is_rolled_back(lab: Lab, outside: dict[str, Any]) -> None:
    """A change whose include fails `bird -p` (injected by hand): the new interface
    and set elements go again, the old include stays, the session stays up."""
    include = state().bird_include
    before = include.read_text()
    result = in_reflector(
        lab,
        f"""
        import dataclasses, json
        from pathlib import Path
        from ibgp_tunnel.autopeer import apply as ap, birdinclude, nftsets, wireguard
        from ibgp_tunnel.autopeer.state import StateDir
        config = ap.ApplyConfig(StateDir(Path({str(state().root)!r})), Path("/nonexistent"),
            birdinclude.Bird(Path({str(Path(LAB_DIR) / "nodes" / REFLECTOR / "bird.conf")!r}),
                Path("/run/bird/bird.ctl"), {location.bird_tool("bird")!r},
                {location.bird_tool("birdc")!r}), Path("/nonexistent"),
            userspace_wireguard=True)
        applier = ap.Applier(config)
        old = ap.Target(
            (), {{}}, Path(config.state.bird_include).read_text(),
            {{i: s for i, s in json.loads({json.dumps(json.dumps(_wireguard(lab)))}).items()}},
            tuple(nftsets.elements("ibgp-tunnel", nftsets.IFACES_SET)),
            tuple(int(p) for p in nftsets.elements("ibgp-tunnel", nftsets.PORTS_SET)))
        (name, spec), = old.wireguard.items()
        extra = dict(spec, listenPort=29998)
        new = dataclasses.replace(old, bird=old.bird + "protocol bgp broken {{\\n",
            wireguard={{**old.wireguard, "apbroken": extra}},
            interfaces=old.interfaces + ("apbroken",), ports=old.ports + (29998,))
        try:
            ap._transition(config, old, new)
            print(json.dumps("applied"))
        except birdinclude.IncludeRefused as error:
            print(json.dumps([str(error), wireguard.exists("apbroken"),
                sorted(nftsets.elements("ibgp-tunnel", nftsets.IFACES_SET))]))
        """,
    )
    assert result != "applied"
    refusal, broken_exists, ifaces = result
    assert refusal.startswith("bird -p refused the autopeer include"), refusal
    assert not broken_exists and ifaces == [outside["peer"]["interface"]]
    assert include.read_text() == before
    assert "Established" in session(lab, outside["protocol"])


def _wireguard(lab: Lab) -> dict[str, Any]:
    """The applied peer's rendered interface, as the unit recorded it."""
    (record,) = read_peers(state()).values()
    status = read_status(state(), ASN) or {}
    (peer,) = status["peers"]
    return {str(record["interface"]): _rendered_spec(peer)}


def _rendered_spec(peer: dict[str, Any]) -> dict[str, Any]:
    from ibgp_tunnel.autopeer.render import render_autopeers

    spec = autopeerlab.spec_file(Path(LAB_DIR), REFLECTOR)
    rendered = render_autopeers(spec, [parse_request(peer["request"])])
    return dict(rendered.wireguard[peer["interface"]])


def test_static_peer_wins_a_collision(lab: Lab, outside: dict[str, Any]) -> None:
    tmp = outside["tmp"]
    request = {
        "asn": STATIC_ASN,
        "public_key": wgkeys.public_key_of(wgkeys.generate_private_key()),
        "neighbor": "fe80::998",
    }
    status = submit(tmp, STATIC_ASN, "add", request)
    assert status["state"] == "refused", status
    assert status["field"] == "asn" and "set up by its operator" in status["message"], status
    assert "Established" in birdc(lab.st, REFLECTOR, "show", "protocols", "dn42_peer1")
    assert len(read_peers(state())) == 1


def _reboot_like(lab: Lab, peer: dict[str, Any]) -> str:
    """The unit stopped, its interface and set elements gone (what a reboot leaves
    of them); the namespace."""
    (unit,) = [d for d in lab.st.daemons if d.name == f"{REFLECTOR}/autopeer-apply"]
    daemons.stop(unit)
    lab.st.daemons.remove(unit)
    ns = str(lab.st.nodes[REFLECTOR]["netns"])
    subprocess.run(["ip", "-n", ns, "link", "delete", "dev", peer["interface"]], check=True)
    in_reflector(
        lab,
        """
        import json
        from ibgp_tunnel.autopeer import nftsets
        nftsets.sync_all("ibgp-tunnel", [], [])
        print(json.dumps(True))
        """,
    )
    assert elements(lab) == [[], []]
    return ns


def test_restore_after_reboot(lab: Lab, outside: dict[str, Any]) -> None:
    """`restore` (the boot unit) rebuilds interface and set elements from peers/."""
    peer = outside["peer"]
    ns = _reboot_like(lab, peer)
    poll(lambda: "Established" not in session(lab, outside["protocol"]), 30, "session down")
    argv = autopeerlab.apply_argv(Path(LAB_DIR), REFLECTOR, "ibgp-tunnel")
    argv = [a for a in argv if a != "--watch"]
    argv[argv.index("apply")] = "restore"
    done = subprocess.run(
        autopeerlab.ns_argv(Path(LAB_DIR), REFLECTOR, ns, argv),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and "restored 1 autopeering" in done.stdout, done.stderr
    poll(lambda: "Established" in session(lab, outside["protocol"]), DEADLINE, "restored")
    assert elements(lab) == [[peer["interface"]], [str(peer["listen_port"])]]
    lab.st.daemons.append(autopeerlab.start_apply(Path(LAB_DIR), REFLECTOR, ns, "ibgp-tunnel"))
    lab.st.save()


def test_restart_after_reboot_restores(lab: Lab, outside: dict[str, Any]) -> None:
    """The apply unit started again after a reboot-like stop restores on its own."""
    peer = outside["peer"]
    ns = _reboot_like(lab, peer)
    poll(lambda: "Established" not in session(lab, outside["protocol"]), 30, "session down")
    lab.st.daemons.append(autopeerlab.start_apply(Path(LAB_DIR), REFLECTOR, ns, "ibgp-tunnel"))
    lab.st.save()
    poll(lambda: "Established" in session(lab, outside["protocol"]), DEADLINE, "restored")
    assert elements(lab) == [[peer["interface"]], [str(peer["listen_port"])]]


def test_owner_updates(lab: Lab, outside: dict[str, Any]) -> None:
    """A signed update replaces the peering: here its MTU; the session comes back."""
    peer = outside["peer"]
    request = outside["router"].request(mtu=1400)
    status = submit(outside["tmp"], ASN, "update", request)
    assert status["state"] == "applied", status
    (record,) = read_peers(state()).values()
    assert record["request"]["mtu"] == 1400
    ns = lab.st.nodes[REFLECTOR]["netns"]
    link = subprocess.run(
        ["ip", "-n", ns, "link", "show", "dev", peer["interface"]], capture_output=True, text=True
    )
    assert " mtu 1400 " in link.stdout, link.stdout
    poll(lambda: "Established" in session(lab, outside["protocol"]), DEADLINE, "after update")


def test_removal_tears_everything_down(lab: Lab, outside: dict[str, Any]) -> None:
    peer = outside["peer"]
    status = submit(outside["tmp"], ASN, "remove", None)
    assert status["state"] == "removed", status
    assert read_peers(state()) == {}
    assert state().bird_include.read_text().strip() == ""
    assert outside["protocol"] not in birdc(lab.st, REFLECTOR, "show", "protocols")
    ns = lab.st.nodes[REFLECTOR]["netns"]
    link = subprocess.run(["ip", "-n", ns, "link", "show", "dev", peer["interface"]], check=False)
    assert link.returncode != 0
    assert elements(lab) == [[], []]


def test_operator_removes_beside_the_running_unit(lab: Lab, outside: dict[str, Any]) -> None:
    """`dn42 autopeer remove` while the unit runs: torn down, and the unit (which
    reloads on the state's generation) does not bring it back."""
    status = submit(outside["tmp"], ASN, "add", outside["router"].request())
    assert status["state"] == "applied", status
    poll(lambda: "Established" in session(lab, outside["protocol"]), DEADLINE, "added again")
    ns = lab.st.nodes[REFLECTOR]["netns"]
    argv = autopeerlab.apply_argv(Path(LAB_DIR), REFLECTOR, "ibgp-tunnel")
    argv = [a for a in argv if a != "--watch"]
    argv[argv.index("apply")] = "remove"
    argv.insert(argv.index("remove") + 1, str(ASN))
    done = subprocess.run(
        autopeerlab.ns_argv(Path(LAB_DIR), REFLECTOR, ns, argv),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert read_peers(state()) == {} and elements(lab) == [[], []]
    assert outside["protocol"] not in birdc(lab.st, REFLECTOR, "show", "protocols")
    # A later entry (another ASN's, refused) makes the unit drain and reload.
    submit(outside["tmp"], STATIC_ASN, "remove", None)
    assert read_peers(state()) == {} and elements(lab) == [[], []]
    assert outside["protocol"] not in birdc(lab.st, REFLECTOR, "show", "protocols")

"""The apply unit's hands, on real tools in a namespace of their own: the WireGuard
interface of a DN42 peer as the core renders it (wireguard-go, as in the lab),
the nft set elements, and the BIRD include swap: `bird -p` first, rollback when
BIRD refuses, the old protocols staying up. BIRD 3 and BIRD 2.

Each step runs in the namespace with a private /run (wireguard-go's sockets, the
rendered key path /run/secrets/...), as the apply unit does on its host."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from labtools import EXAMPLE_PLAN, REPO, TEST_PREFIX, poll, skip_reason

from ibgp_tunnel import keys as wgkeys
from ibgp_tunnel import planfile
from ibgp_tunnel.lab import netns
from ibgp_tunnel.lab.artifacts import render_plan

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))

NS = TEST_PREFIX + "aprt"
BIRDS = {v: REPO / ".cache" / "bird" / f"bird{v}" / "bin" for v in (3, 2)}
TABLE = "ibgp-tunnel"
SETS = f"""table inet {TABLE} {{
  set autopeer_ifaces {{ type ifname; }}
  set autopeer_ports {{ type inet_service; }}
}}
"""


@pytest.fixture
def ns(tmp_path: Path) -> Iterator[Path]:
    """The namespace; yields its private /run."""
    netns.delete_netns(NS)
    netns.add_netns(NS)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    netns.ip_batch(NS, ["link set lo up"])
    try:
        yield run_dir
    finally:
        for pidfile in run_dir.glob("bird/*.pid"):
            subprocess.run(["kill", pidfile.read_text().strip()], check=False)
        netns.delete_netns(NS)


def inside(run_dir: Path, code: str) -> Any:
    """Run `code` (Python, prints JSON last) in the namespace with its private /run."""
    argv = netns.ns_argv(NS, [sys.executable, "-c", textwrap.dedent(code)], run_dir)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def sh(run_dir: Path, *argv: str) -> str:
    return netns.ns_run(NS, list(argv), run_dir=run_dir).stdout


@pytest.fixture(scope="module")
def rendered_tunnel() -> tuple[str, dict[str, Any]]:
    """The example's DN42 tunnel as the core renders it (a static peer's attrset: the
    same shape the core gives an autopeer)."""
    artifacts = render_plan(EXAMPLE_PLAN, planfile.load(EXAMPLE_PLAN))
    ((interface, spec),) = [
        (i, s) for i, s in artifacts["dmz"]["wireguard"].items() if i.startswith("dn42")
    ]
    return interface, spec


def test_interface_and_set_elements(ns: Path, rendered_tunnel: tuple[str, Any]) -> None:
    interface, spec = rendered_tunnel
    key = wgkeys.generate_private_key()
    secret = ns / str(spec["privateKeyFile"]).removeprefix("/run/")
    secret.parent.mkdir(parents=True)
    secret.write_text(key + "\n")
    netns.ns_run(NS, ["nft", "-f", "-"], input=SETS)
    spec = {k: v for k, v in spec.items() if k != "peers"} | {
        "peers": [p | {"presharedKeyFile": None} for p in spec["peers"]]
    }
    result = inside(
        ns,
        f"""
        import json
        from ibgp_tunnel.autopeer import nftsets, wireguard
        spec = json.loads({json.dumps(json.dumps(spec))})
        wireguard.create({interface!r}, spec, userspace=True)
        nftsets.sync_all({TABLE!r}, [{interface!r}], [spec["listenPort"]])
        print(json.dumps([sorted(nftsets.elements({TABLE!r}, n)) for n in
              ("autopeer_ifaces", "autopeer_ports")]))
        """,
    )
    assert result == [[interface], [str(spec["listenPort"])]]
    shown = sh(ns, "wg", "show", interface, "dump").splitlines()
    ours, peer = shown[0].split("\t"), shown[1].split("\t")
    assert ours[0] == key and ours[2] == str(spec["listenPort"])
    assert peer[0] == spec["peers"][0]["publicKey"]
    assert sorted(peer[3].split(",")) == sorted(spec["peers"][0]["allowedIPs"])
    link = sh(ns, "ip", "-d", "address", "show", "dev", interface)
    assert f"mtu {spec['mtu']}" in link and spec["ips"][0].split("/")[0] in link
    # Idempotent, and a removal takes the element and the interface away.
    result = inside(
        ns,
        f"""
        import json
        from ibgp_tunnel.autopeer import nftsets, wireguard
        nftsets.sync_all({TABLE!r}, [], [])
        wireguard.delete({interface!r})
        wireguard.delete({interface!r})
        print(json.dumps([wireguard.exists({interface!r}),
              sorted(nftsets.elements({TABLE!r}, "autopeer_ifaces"))]))
        """,
    )
    assert result == [False, []]


@pytest.mark.parametrize(
    "name",
    ['x"; flush ruleset; "', "a b", "../../x", "wg0\nx", "ifname-too-long-x", "-x", "é"],
)
def test_no_name_reaches_nft_or_ip(ns: Path, name: str) -> None:
    netns.ns_run(NS, ["nft", "-f", "-"], input=SETS)
    result = inside(
        ns,
        f"""
        import json
        from ibgp_tunnel.autopeer import nftsets, wireguard
        from ibgp_tunnel.autopeer.run import ApplyError
        out = []
        for call in (lambda: nftsets.sync_all({TABLE!r}, [{name!r}], []),
                     lambda: wireguard.create({name!r}, {{}}, userspace=True)):
            try:
                call(); out.append("accepted")
            except ApplyError as error:
                out.append(str(error))
        print(json.dumps(out))
        """,
    )
    assert all("not a Linux interface name" in r for r in result), result
    assert "set autopeer_ifaces" in sh(ns, "nft", "list", "ruleset")
    assert sh(ns, "ip", "-o", "link").count(":") > 0 and name not in sh(ns, "ip", "-o", "link")


INCLUDE_A = "protocol static ap_a { ipv6; route fd42:a::/48 unreachable; }\n"
INCLUDE_B = "protocol static ap_b { ipv6; route fd42:b::/48 unreachable; }\n"


def start_bird(run_dir: Path, version: int) -> tuple[Path, Path]:
    """BIRD on a bird.conf that includes the autopeer include; (state root, socket)."""
    state = run_dir.parent / "state"
    include = state / "bird" / "autopeer.conf"
    include.parent.mkdir(parents=True)
    include.write_text("")
    conf = run_dir.parent / "bird.conf"
    conf.write_text(f'router id 10.0.0.1;\nprotocol device {{}}\ninclude "{include}";\n')
    socket = run_dir / "bird" / "bird.ctl"
    socket.parent.mkdir()
    bird = str(BIRDS[version] / "bird")
    sh(run_dir, bird, "-c", str(conf), "-s", "/run/bird/bird.ctl", "-P", "/run/bird/bird.pid")
    poll(socket.exists, 10, "BIRD's socket")
    return state, socket


def swap(run_dir: Path, version: int, state: Path, text: str) -> str:
    """birdinclude.swap in the namespace: '' or the refusal."""
    return str(
        inside(
            run_dir,
            f"""
            import json
            from pathlib import Path
            from ibgp_tunnel.autopeer import birdinclude
            bird = birdinclude.Bird(Path({str(run_dir.parent / "bird.conf")!r}),
                Path("/run/bird/bird.ctl"), {str(BIRDS[version] / "bird")!r},
                {str(BIRDS[version] / "birdc")!r})
            try:
                birdinclude.swap(bird, Path({str(state / "bird" / "autopeer.conf")!r}), {text!r})
                print(json.dumps(""))
            except birdinclude.IncludeRefused as error:
                print(json.dumps(str(error)))
            """,
        )
    )


def protocols(run_dir: Path, version: int) -> set[str]:
    out = sh(
        run_dir, str(BIRDS[version] / "birdc"), "-s", "/run/bird/bird.ctl", "show", "protocols"
    )
    return {line.split()[0] for line in out.splitlines()[2:] if line.strip()}


@pytest.mark.parametrize("version", [3, 2])
def test_bird_include_swap_and_rollback(ns: Path, version: int) -> None:
    state, _ = start_bird(ns, version)
    include = state / "bird" / "autopeer.conf"
    assert swap(ns, version, state, INCLUDE_A) == ""
    assert include.read_text() == INCLUDE_A and "ap_a" in protocols(ns, version)
    # What BIRD does not parse never becomes the include; the old protocol stays.
    for broken in (
        "protocol static ap_b { ipv6; route fd42:b::/48 unreachable;\n",
        'protocol static ap_b { ipv6; }\ninclude "/etc/shadow";\n',
    ):
        refusal = swap(ns, version, state, broken)
        assert refusal.startswith("bird -p refused the autopeer include"), refusal
        assert include.read_text() == INCLUDE_A
        assert "ap_a" in protocols(ns, version)
    assert not list(include.parent.glob(".check-*"))
    assert swap(ns, version, state, INCLUDE_B) == ""
    assert {"ap_b"} <= protocols(ns, version) and "ap_a" not in protocols(ns, version)
    # BIRD gone: configure fails after the check passed; the old text goes back.
    pid = (ns / "bird" / "bird.pid").read_text().strip()
    subprocess.run(["kill", pid], check=True)
    poll(lambda: not Path(f"/proc/{pid}").exists(), 10, "BIRD stopped")
    refusal = swap(ns, version, state, INCLUDE_A)
    assert refusal.startswith("birdc configure refused the autopeer include"), refusal
    assert include.read_text() == INCLUDE_B

"""A reflector never sends the plan's own networks out of its uplink.

When a reflector loses its last route to a client's LAN (both twins
withdrawing it at once), the kernel would forward that LAN's packets by the
default route, masqueraded, outside the tunnels (docs/performance.md, "The
soak's BIRD 2 violations, traced"). render/nftables.nix rejects them in our
forward chain; test_lab_uplink_guard.py shows it on a running lab.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from nixcore import EXAMPLE_PLAN, TWO_REFLECTORS_PLAN, core_call, needs_nft_netns, needs_nix, render

pytestmark = needs_nix

V4 = "reject with icmp net-unreachable"
V6 = "reject with icmpv6 no-route"


def _guards(content: str) -> list[str]:
    return [line.strip() for line in content.splitlines() if "reject with" in line]


def test_the_example_reflector_rejects_its_link_and_dn42_networks_out_of_eth0() -> None:
    content = render(EXAMPLE_PLAN, "dmz")["nftables"]["content"]
    assert _guards(content) == [
        'oifname { "eth0" } ip daddr { 10.255.255.0/30, 172.20.0.0/14, 172.31.0.0/16, '
        f"10.0.0.0/8 }} {V4}",
        f'oifname {{ "eth0" }} ip6 daddr {{ fdb7:1dec:4d21:ff::/64, fd00::/8 }} {V6}',
    ]
    # First in the forward chain: nothing before it accepts past it.
    forward = content.split("chain forward {\n")[1].splitlines()
    assert forward[1].strip() == _guards(content)[0]


def test_two_reflectors_guard_every_clients_lan_but_not_their_own_announcements() -> None:
    for host in ("vps1", "vps2"):
        (v4, v6) = _guards(render(TWO_REFLECTORS_PLAN, host)["nftables"]["content"])
        # Both clients' LANs, the twin's clients' too, and every link subnet.
        for lan in ("192.168.1.0/24", "192.168.2.0/24", "10.255.255.0/31", "10.255.255.2/31"):
            assert lan in v4, (host, lan)
        for lan in ("fd42:4242:1::/64", "fd42:4242:2::/64", "fdb7:1dec:4d21:f0::/127"):
            assert lan in v6, (host, lan)
        # The reflectors' own statics ("route via the VPS") leave by the uplink.
        assert "104.16.0.0/13" not in v4 and "2606:4700::/32" not in v6
        assert v4.startswith('oifname { "eth0" } ip daddr {') and v4.endswith(V4)


def test_clients_get_no_guard() -> None:
    for plan, host in ((EXAMPLE_PLAN, "pve"), (TWO_REFLECTORS_PLAN, "home")):
        assert _guards(render(plan, host)["nftables"]["content"]) == []


def _render_spec(override: str) -> str:
    content: str = core_call(
        f'let s = core.hostFromPlan (core.readPlan {TWO_REFLECTORS_PLAN}) "vps1"; '
        f"in (core.render (s // ({override}))).nftables.content"
    )
    return content


def test_dn42_export_sets_are_guarded_and_no_uplink_means_no_guard() -> None:
    own = (
        '{ importSets = [ ]; prefixSets = s.prefixSets // { own = { ipv4 = [ "172.22.81.0/24" ]; '
        'ipv6 = [ "fd42:81::/48+" ]; }; }; dn42Peers = builtins.mapAttrs '
        '(_: p: p // { exportSets = [ "own" ]; }) s.dn42Peers; }'
    )
    (v4, v6) = _guards(_render_spec(own))
    assert "172.22.81.0/24" in v4 and "10.0.0.0/8" not in v4
    assert "fd42:81::/48" in v6 and "fd00::/8" not in v6
    assert _guards(_render_spec("{ uplinkInterfaces = [ ]; }")) == []


@needs_nft_netns
def test_nft_accepts_the_guarded_rulesets(tmp_path: Path) -> None:
    for plan, host in ((EXAMPLE_PLAN, "dmz"), (TWO_REFLECTORS_PLAN, "vps1")):
        rules = tmp_path / f"{host}.nft"
        rules.write_text(render(plan, host)["nftables"]["ruleset"])
        done = subprocess.run(
            ["unshare", "--net", "nft", "-c", "-f", str(rules)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, f"nft -c refused {host}:\n{done.stderr}"

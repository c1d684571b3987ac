# The testScript of ./vm-test.nix, which puts the values it shares with the
# nodes in front of it as assignments (announced_host, peer_v4, peer_v6,
# hijack_v4). The NixOS test driver runs it in the VMs; checks/run/vm.py runs
# the very same text against the namespace lab (`scripts/flake-checks vm`).
#
# Both drivers run every command under `set -euo pipefail`: `cmd | grep -q X`
# then fails with 141 whenever grep exits on its first match while cmd still
# writes (SIGPIPE), so filters read their whole input (`grep -c`).
import json
import re
import shlex
from typing import Any


def open_udp_ports(machine: Any) -> set[int]:
    """UDP ports NixOS's nftables firewall opens on every interface
    (networking.firewall.allowedUDPPorts and allowedUDPPortRanges). It writes
    them as one set, `udp dport { P, Q, A-B } accept`, which nft lists as
    `udp dport P accept` when it holds one port, and with a port inside a
    range merged into it (dmz's DN42 port 21080 inside autopeer's
    20000-29999): every form counts; per-interface rules (`iifname ... udp
    dport ...`) do not."""
    chain = machine.succeed("nft list chain inet nixos-fw input-allow")
    ports: set[int] = set()
    for line in chain.splitlines():
        found = re.fullmatch(r"\s*udp dport (\d+(?:-\d+)?|\{ [\d, -]+ \}) accept(?: comment .*)?", line)
        if found:
            for low, high in re.findall(r"(\d+)(?:-(\d+))?", found[1]):
                ports |= set(range(int(low), int(high or low) + 1))
    return ports


def autopeer_api(path: str, body: dict[str, Any]) -> str:
    """A POST to dmz's autopeer API as its reverse proxy would send it (the API
    listens on the loopback); --fail-with-body keeps a refusal's JSON error."""
    data = shlex.quote(json.dumps(body))
    return (
        "curl -sS --fail-with-body -H 'Content-Type: application/json'"
        f" --data-binary {data} http://127.0.0.1:8042{path}"
    )


def autopeer_sign(text: str) -> str:
    """The outside router signs a challenge with its maintainer's SSH key. An old
    signature file goes first: ssh-keygen does not overwrite it (it asks, reads
    no answer, and exits 0), so the second request would send the first's."""
    return (
        "rm -f /tmp/challenge.txt.sig"
        f" && printf %s {shlex.quote(text)} > /tmp/challenge.txt"
        f" && ssh-keygen -Y sign -n dn42-autopeer@ibgp-tunnel -f {autopeer_ssh_key}"
        " /tmp/challenge.txt > /dev/null && cat /tmp/challenge.txt.sig"
    )


def autopeer_signed(op: str, request: dict[str, Any] | None) -> None:
    """Challenge on dmz, signature on outside, submission on dmz (202)."""
    body = {"op": op, "asn": autopeer_asn, "request": request}
    challenge = json.loads(dmz.succeed(autopeer_api("/api/challenge", body)))
    signature = outside.succeed(autopeer_sign(challenge["text"]))
    submission = {"challenge_id": challenge["id"], "signature": signature, "signature_kind": "ssh"}
    dmz.succeed(autopeer_api("/api/peerings", submission))


start_all()

for machine in (dmz, pve):
    machine.wait_for_unit("bird.service")
    machine.wait_for_unit("wireguard-wg-ibgp.service")

with subtest("iBGP session is Established on both ends"):
    dmz.wait_until_succeeds("birdc show protocols ibgp_pve | grep -c Established", timeout=60)
    pve.wait_until_succeeds("birdc show protocols ibgp_dmz | grep -c Established", timeout=60)

with subtest("announced prefixes reach pve's kernel over the tunnel"):
    pve.wait_until_succeeds("ip route show proto bird | grep -c '^104.16.0.0/13 .*dev wg-ibgp'", timeout=60)
    pve.wait_until_succeeds("ip -6 route show proto bird | grep -c '^2606:4700::/32 .*dev wg-ibgp'", timeout=60)
    # Unreachable statics must not black-hole the reflector's own traffic.
    dmz.fail("ip route show proto bird | grep -c unreachable")

with subtest("the WireGuard port is open on the reflector only"):
    # dmz opens its DN42 port (21080) too, so NixOS writes one set for both.
    dmz_ports = open_udp_ports(dmz)
    assert {51821, 21080} <= dmz_ports, dmz_ports
    pve_ports = open_udp_ports(pve)
    assert 51821 not in pve_ports, pve_ports

with subtest("LAN traffic to an announced prefix goes through the tunnel"):
    lan.wait_until_succeeds(f"ping -c 1 -W 2 {announced_host}", timeout=60)
    out = lan.succeed(f"tracepath -n -m 3 {announced_host}")
    assert "10.255.255.2" in out, out

with subtest("BFD watches the tunnel"):
    pve.wait_until_succeeds("birdc show bfd sessions | grep -c Up", timeout=30)

with subtest("restarting the reflector's BIRD keeps the client's routes (graceful restart)"):
    dmz.succeed("systemctl restart bird.service")
    pve.succeed("ip route show proto bird | grep -c '^104.16.0.0/13 .*dev wg-ibgp'")
    # Past BFD's detection time (0.45 s): BFD down must start a graceful restart
    # (bfd graceful), not reset the session and flush the routes.
    pve.succeed("sleep 2; ip route show proto bird | grep -c '^104.16.0.0/13 .*dev wg-ibgp'")
    pve.wait_until_succeeds("birdc show protocols ibgp_dmz | grep -c Established", timeout=60)
    lan.succeed(f"ping -c 1 -W 2 {announced_host}")

with subtest("stopping BIRD for good takes its routes out of the kernel"):
    # A stop is not a restart: birdc down, so nothing stale stays behind.
    pve.succeed("systemctl stop bird.service")
    pve.fail("ip route show proto bird | grep -c .")
    pve.fail("ip -6 route show proto bird | grep -c .")
    dmz.wait_until_fails("birdc show protocols ibgp_pve | grep -c Established", timeout=30)
    pve.succeed("systemctl start bird.service")
    pve.wait_until_succeeds("ip route show proto bird | grep -c '^104.16.0.0/13 .*dev wg-ibgp'", timeout=60)

with subtest("DN42: one session over IPv6 link-local through the peer's own tunnel"):
    dmz.wait_for_unit("wireguard-dn42-peer1.service")
    # RPKI over RTR: the first ROA JSON download (normally 30 s after boot, then
    # every 15 min) for the local cache, which BIRD's protocol rpki asks.
    dmz.wait_for_unit("ibgp-tunnel-stayrtr.service")
    dmz.succeed("systemctl start ibgp-tunnel-dn42-rtr.service")
    dmz.wait_until_succeeds("birdc show protocols dn42_rpki_1 | grep -c Established", timeout=60)
    dmz.wait_until_succeeds("birdc show protocols all dn42_peer1 | grep -c 'Neighbor address: fe80::1080%dn42-peer1'", timeout=60)
    dmz.wait_until_succeeds("birdc show protocols dn42_peer1 | grep -c Established", timeout=60)

with subtest("DN42: the peer's IPv4 and IPv6 routes reach pve through dmz"):
    dmz.wait_until_succeeds(f"ip route show proto bird | grep -c '^{peer_v4} via inet6 fe80::1080 dev dn42-peer1'", timeout=60)
    pve.wait_until_succeeds(f"ip route show proto bird | grep -c '^{peer_v4} .*dev wg-ibgp'", timeout=60)
    pve.wait_until_succeeds(f"ip -6 route show proto bird | grep -c '^{peer_v6} .*dev wg-ibgp'", timeout=60)

with subtest("DN42: ROA-invalid routes are refused"):
    # The cache serves the JSON once it has reread it (every refresh interval).
    dmz.wait_until_succeeds(f"birdc show route table dn42_roa4 | grep -c '{hijack_v4}'", timeout=60)
    dmz.fail(f"birdc show route {hijack_v4} | grep -c '{hijack_v4}'")
    pve.fail(f"ip route show proto bird | grep -c '^{hijack_v4}'")

with subtest("DN42: routes carry the link's communities to the client"):
    pve.succeed(f"birdc show route {peer_v4} all | grep -c '(64511,2) (64511,24) (64511,34)'")

with subtest("the exporters read BIRD 3 and WireGuard; their ports stay closed"):
    for machine, session in ((dmz, "ibgp_pve"), (pve, "ibgp_dmz")):
        machine.wait_for_unit("prometheus-bird-exporter.service")
        machine.wait_for_unit("prometheus-wireguard-exporter.service")
        machine.wait_until_succeeds(
            "curl -sf http://127.0.0.1:9324/metrics"
            " | grep -E '^bird_protocol_up[{].*name=\"" + session + "\".*[}] 1$'",
            timeout=60,
        )
        machine.wait_until_succeeds(
            "curl -sf http://127.0.0.1:9324/metrics | grep -E '^bird_bfd_session_up[{].*[}] 1$'",
            timeout=60,
        )
        # A handshake has happened: its Unix time, not 0.
        machine.wait_until_succeeds(
            "curl -sf http://127.0.0.1:9586/metrics"
            " | grep -E '^wireguard_latest_handshake_seconds[{].*interface=\"wg-ibgp\".*[}] [1-9]'",
            timeout=60,
        )
    # The routes the plan gives pve, as IbgpTunnelKernelRoutesMissing counts them:
    # dmz's five IPv4 announcements and peer1's ROA-valid DN42 prefix.
    pve.succeed(
        "curl -sf http://127.0.0.1:9324/metrics"
        " | grep -E '^bird_protocol_prefix_export_count[{].*ip_version=\"4\".*proto=\"Kernel\".*[}] 6$'"
    )
    pve.fail("curl -sf --max-time 3 http://dmz:9324/metrics")

with subtest("keys never enter the Nix store"):
    pve.succeed("test -e /run/secrets/wg_ibgp/private_key")
    pve.fail(
        "grep -qF \"$(cat /run/secrets/wg_ibgp/private_key)\""
        " /etc/bird/bird.conf $(readlink -f /etc/systemd/system/wireguard-wg-ibgp.service)"
    )

with subtest("autopeer: a request signed by the ASN's maintainer gets a tunnel and an Established session"):
    dmz.wait_for_unit("ibgp-tunnel-autopeer-web.service")
    dmz.wait_for_unit("ibgp-tunnel-autopeer-apply.service")
    # The timer's first refresh comes 30 s after boot: now, from the fixture repository.
    dmz.succeed("systemctl start ibgp-tunnel-autopeer-registry.service")
    outside.wait_for_unit("bird.service")
    address = outside.succeed("ip -4 -o address show dev eth1 | awk '{print $4}'").strip().split("/")[0]
    autopeer_request = {
        "asn": autopeer_asn,
        "public_key": autopeer_public_key,
        "endpoint": f"{address}:{autopeer_listen_port}",
        "neighbor": autopeer_neighbor,
    }
    autopeer_signed("add", autopeer_request)
    dmz.wait_until_succeeds(f"birdc show protocols dn42_ap{autopeer_asn} | grep -c Established", timeout=60)
    outside.wait_until_succeeds("birdc show protocols dmz | grep -c Established", timeout=60)
    status = json.loads(dmz.succeed(f"curl -sSf http://127.0.0.1:8042/api/peerings/{autopeer_asn}"))
    assert str(autopeer_asn) in json.dumps(status), status
    # The port the apply unit gave the tunnel is in dmz's nft set (and the range NixOS opens).
    dmz.succeed(f"nft list set inet ibgp-tunnel autopeer_ports | grep -c {20000 + autopeer_asn % 10000}")
    dmz.succeed(f"nft list set inet ibgp-tunnel autopeer_ifaces | grep -c ap{autopeer_asn}")

with subtest("autopeer: the web service's user cannot read peers/ or write status/"):
    dmz.wait_for_unit("ibgp-tunnel-autopeer-web.service")
    dmz.fail("runuser -u ibgp-autopeer -- ls /var/lib/ibgp-tunnel/autopeer/peers")
    dmz.fail("runuser -u ibgp-autopeer -- touch /var/lib/ibgp-tunnel/autopeer/status/planted")
    dmz.succeed("runuser -u ibgp-autopeer -- ls /var/lib/ibgp-tunnel/autopeer/status")
    # Nothing of the state is world-writable.
    dmz.fail("find /var/lib/ibgp-tunnel/autopeer -perm -o+w | grep -c .")

with subtest("autopeer: both units restarted, the peering is restored"):
    dmz.wait_for_unit("ibgp-tunnel-autopeer-apply.service")
    dmz.succeed(f"ip link delete ap{autopeer_asn}")
    dmz.succeed("systemctl restart ibgp-tunnel-autopeer-apply.service")
    dmz.succeed("systemctl restart ibgp-tunnel-autopeer-web.service")
    dmz.wait_until_succeeds(f"ip link show ap{autopeer_asn} | grep -c UP", timeout=30)
    dmz.wait_until_succeeds(f"birdc show protocols dn42_ap{autopeer_asn} | grep -c Established", timeout=60)

with subtest("autopeer: the owner's signed removal tears it down"):
    dmz.wait_for_unit("ibgp-tunnel-autopeer-web.service")
    autopeer_signed("remove", None)
    dmz.wait_until_fails(f"ip link show ap{autopeer_asn}", timeout=30)
    dmz.wait_until_fails(f"birdc show protocols dn42_ap{autopeer_asn} | grep -c dn42_ap", timeout=30)
    outside.wait_until_fails("birdc show protocols dmz | grep -c Established", timeout=60)

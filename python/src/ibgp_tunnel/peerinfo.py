"""What a DN42 peer asks for before peering with us (`ibgp-tunnel dn42 peer-info`).

    peer_info(plan_path: Path, host: str, peer: str, secrets_file: Path) -> PeerInfo
        Our ASN, the endpoint host and port the peer dials, our DN42 WireGuard
        public key (hosts.<host>.dn42_public_key, written by `ibgp-tunnel keys`),
        our link-local and optional IPv4 addresses, the MTU, and whether a PSK is
        used with how to hand it over. Ports and MTU are the core's rendering, not
        recomputed. Raises PlanError (exit 1: the plan fails `check`) or
        PeerInfoError (exit 2: no such host or peer, a peer without a tunnel).

Nothing here reads a secret: the PSK is named (its sops file and key), never
read, so no private byte can reach the output.
"""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ibgp_tunnel import paths, planfile
from ibgp_tunnel.check import check_file
from ibgp_tunnel.errors import InputError, PlanError
from ibgp_tunnel.findings import errors
from ibgp_tunnel.render import host_spec, render_host


class PeerInfoError(InputError):
    """peer-info cannot describe the peer (exit 2): the message names the field and the fix."""


@dataclass(frozen=True)
class PeerInfo:
    host: str
    peer: str
    peer_asn: int
    asn: int
    endpoint_host: str | None  # None: the plan has no hosts.<host>.endpoint
    listen_port: int
    public_key: str | None  # None: `ibgp-tunnel keys` has not written it yet
    interface: str
    link_local: str  # ours, without the /64
    peer_link_local: str | None  # the session's neighbor when it is link-local
    ipv4: str | None
    peer_ipv4: str | None
    mtu: int
    peer_endpoint: str | None  # set: we dial the peer there
    extended_next_hop: bool  # IPv4 routes over the IPv6 link-local session
    preshared_key: bool
    psk_secret: str | None  # sops key of the PSK, e.g. wg_dn42/psk/peer1
    psk_command: str | None  # how to read it to hand it over

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def peer_info(plan_path: Path, host: str, peer: str, secrets_file: Path) -> PeerInfo:
    """The peering details of ``peer`` on ``host`` (see the module's docstring)."""
    findings = check_file(plan_path)
    if errors(findings):
        raise PlanError(f"{plan_path} does not pass `ibgp-tunnel check`; fix it first", findings)
    data = planfile.load(plan_path)
    hosts = data.get("hosts", {})
    if host not in hosts:
        raise PeerInfoError(
            f"name a host of {plan_path}: {host!r} is not one (hosts: {', '.join(sorted(hosts))})"
        )
    peers = hosts[host].get("dn42_peers", {})
    if peer not in peers:
        known = ", ".join(sorted(peers)) or "none"
        raise PeerInfoError(
            f"name a DN42 peer of host {host}: {peer!r} is not one "
            f"(hosts.{host}.dn42_peers: {known})"
        )
    spec_peer = host_spec(plan_path, host)["dn42Peers"][peer]
    tunnel = spec_peer.get("tunnel")
    if not isinstance(tunnel, dict) or not tunnel.get("publicKey"):
        raise PeerInfoError(
            f"set hosts.{host}.dn42_peers.{peer}.public_key (the peer's WireGuard key) and "
            "link_local: peer-info describes a tunnel this module runs, and this peer has none"
        )
    interface = spec_peer.get("interface") or f"dn42-{peer}"
    wg = render_host(plan_path, host)["wireguard"][interface]
    neighbor = str(spec_peer["neighbor"])
    link_local_neighbor = neighbor.lower().startswith("fe80:")
    psk_secret = None
    psk_command = None
    if tunnel.get("presharedKeyFile"):
        psk_secret = f"{paths.dn42_defaults()['secret_psk_prefix']}{peer}"
        extract = "".join(f'["{part}"]' for part in psk_secret.split("/"))
        psk_command = f"sops -d --extract {shlex.quote(extract)} {shlex.quote(str(secrets_file))}"
    return PeerInfo(
        host=host,
        peer=peer,
        peer_asn=int(spec_peer["asn"]),
        asn=int(data["asn"]),
        endpoint_host=hosts[host].get("endpoint"),
        listen_port=int(wg["listenPort"]),
        public_key=hosts[host].get("dn42_public_key"),
        interface=interface,
        link_local=str(tunnel["linkLocal"]).split("/")[0],
        peer_link_local=neighbor if link_local_neighbor else None,
        ipv4=tunnel.get("ipv4"),
        peer_ipv4=tunnel.get("peerIpv4"),
        mtu=int(wg["mtu"]),
        peer_endpoint=tunnel.get("endpoint"),
        extended_next_hop=link_local_neighbor,
        preshared_key=psk_secret is not None,
        psk_secret=psk_secret,
        psk_command=psk_command,
    )


def as_text(info: PeerInfo) -> str:
    """The details as a DN42 peering request answers them, one per line."""
    endpoint = (
        f"{_host_port(info.endpoint_host, info.listen_port)}"
        if info.endpoint_host
        else f"(no hosts.{info.host}.endpoint in the plan) port {info.listen_port}"
    )
    lines = [
        f"DN42 peering of {info.host} with {info.peer} (AS{info.peer_asn})",
        f"ASN:                  {info.asn}",
        f"WireGuard endpoint:   {endpoint}",
        "WireGuard public key: "
        + (
            info.public_key
            or f"(not in the plan yet: run `ibgp-tunnel keys`, it writes "
            f"hosts.{info.host}.dn42_public_key)"
        ),
        f"Link-local IPv6:      {info.link_local} (yours: {info.peer_link_local or 'none'})",
        "IPv4 (tunnel):        "
        + (f"{info.ipv4} (yours: {info.peer_ipv4})" if info.ipv4 else "none"),
        f"MTU:                  {info.mtu}",
        "BGP:                  "
        + (
            "one multiprotocol session over IPv6 link-local, IPv4 with extended next hop"
            if info.extended_next_hop
            else f"session to {info.peer_ipv4 or 'the neighbor address'}"
        ),
        "We dial:              " + (info.peer_endpoint or "no (you dial us)"),
    ]
    if info.preshared_key:
        lines += [
            "Preshared key:        yes; send it over an encrypted channel, never in the "
            "clear (not IRC or plain mail)",
            f"  read it with:       {info.psk_command}",
        ]
    else:
        lines.append("Preshared key:        no")
    return "\n".join(lines)


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

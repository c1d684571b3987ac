"""DN42 peers over the tunnels the module runs, in the lab: the reflector's
rendered `dn42-*` WireGuard interface (link-local only), the peer's own
wireguard-go and BIRD in its namespace (one multiprotocol session over
fe80::, IPv4 with extended next hop), and the ROA files the lab serves locally
(file:// URLs) for the rendered bird.conf's `include`s.

The reflector side runs exactly what the core rendered; only what lives
outside it in real life is the lab's: the peer's router, the keys (generated
per lab), the place of the ROA files (under the lab directory instead of
/var/lib) and their first copy (the timer's first run)."""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ibgp_tunnel import keys as wgkeys
from ibgp_tunnel import paths
from ibgp_tunnel.lab import autopeerlab, daemons, dn42latency, location, netns
from ibgp_tunnel.lab.artifacts import saved_artifacts
from ibgp_tunnel.lab.errors import LabError, MissingToolError
from ibgp_tunnel.lab.labkeys import install_secret, read_installed_secret
from ibgp_tunnel.lab.peer import (
    EXTRA_IPV4,
    EXTRA_IPV4_LENGTH,
    EXTRA_IPV6,
    EXTRA_IPV6_LENGTH,
    extra_prefixes,
)
from ibgp_tunnel.lab.registry import Roa, registry_roas, roa_json
from ibgp_tunnel.lab.topology import Dn42Peer, Topology

PEER_INTERFACE = "wg0"
# The stand-in dials the reflector and keeps the NAT-less path warm.
PEER_KEEPALIVE = 5
# Where the stand-in's own key and PSK sit inside its private /run.
PEER_KEY = "/run/lab-secrets/dn42-peer.key"
PEER_PSK = "/run/lab-secrets/dn42-peer.psk"
ROA_FILES = {"ipv4": "dn42_roa4.conf", "ipv6": "dn42_roa6.conf"}
ROA_JSON = "dn42_roa.json"


def roa_script() -> Path:
    """The refresh script the NixOS unit runs (the core's resource)."""
    return paths.nix_lib_dir() / "resources" / "dn42-roa-update.sh"


def rtr_script() -> Path:
    """The ROA JSON refresh the NixOS RTR unit runs (the core's resource)."""
    return paths.nix_lib_dir() / "resources" / "dn42-rtr-update.sh"


def peer_roas(peers: list[Dn42Peer]) -> list[Roa]:
    """The ROAs of `roa_lines`, as entries of DN42's ROA JSON."""
    roas = []
    for peer in peers:
        for prefix in (*peer.announce_ipv4, *peer.announce_ipv6):
            length = ipaddress.ip_network(prefix).prefixlen
            roas.append(Roa(prefix, length, peer.asn))
        roas.append(Roa(str(EXTRA_IPV4), EXTRA_IPV4_LENGTH, peer.asn))
        roas.append(Roa(str(EXTRA_IPV6), EXTRA_IPV6_LENGTH, peer.asn))
    return roas


def roa_lines(peers: list[Dn42Peer], family: str) -> str:
    """A BIRD ROA include: every prefix each peer announces, originated by its ASN,
    and the pools its extra announcements (route floods, benches) come from."""
    lines = []
    for peer in peers:
        announced = peer.announce_ipv4 if family == "ipv4" else peer.announce_ipv6
        for prefix in announced:
            length = ipaddress.ip_network(prefix).prefixlen
            lines.append(f"route {prefix} max {length} as {peer.asn};")
        pool, length = (
            (EXTRA_IPV4, EXTRA_IPV4_LENGTH) if family == "ipv4" else (EXTRA_IPV6, EXTRA_IPV6_LENGTH)
        )
        lines.append(f"route {pool} max {length} as {peer.asn};")
    return "\n".join(lines) + "\n"


def lab_includes(lab_dir: Path, host: str, config: str) -> str:
    """A rendered bird.conf with its ROA includes pointed at the lab's files (the
    rendered ones live under /var/lib on a real host)."""

    def local(match: re.Match[str]) -> str:
        measured = dn42latency.local_include(lab_dir, host, match[1])
        if measured is not None:  # latency = "auto": the lab's class file
            return f'include "{measured}";'
        name = Path(match[1]).name
        if name not in ROA_FILES.values():
            return match[0]
        return f'include "{lab_dir / "dn42" / "roa" / host / name}";'

    return autopeerlab.lab_include(lab_dir, host, re.sub(r'include "([^"]+)";', local, config))


def test_peer_key(secrets_dir: Path, peer: str, public_key: str) -> str | None:
    """The example's test-only private key of a DN42 peer (test-dn42-<peer>-wireguard-
    key.txt in the secrets directory or above it, as secrets/test-age-key.txt), when it
    matches the plan's public key: the stand-in then runs the very key the plan names."""
    name = f"test-dn42-{peer}-wireguard-key.txt"
    for path in (secrets_dir / name, secrets_dir.parent / name):
        try:
            key = path.read_text().strip()
            if wgkeys.public_key_of(key) == public_key:
                return key
        except (OSError, wgkeys.KeysError):
            continue
    return None


@dataclass
class Dn42Lab:
    lab_dir: Path
    topo: Topology
    secrets_dir: Path | None = None
    # host -> the DN42 private key of its tunnels; peer node -> its private key
    reflector_keys: dict[str, str] = field(default_factory=dict)
    peer_keys: dict[str, str] = field(default_factory=dict)
    psks: dict[str, str] = field(default_factory=dict)  # peer node -> PSK
    # A DN42 registry's data directory whose ROAs join the lab's ROA files and JSON.
    registry: Path | None = None

    # --- where things are -------------------------------------------------------

    @property
    def root(self) -> Path:
        return self.lab_dir / "dn42"

    def served(self, host: str, family: str) -> Path:
        """The file the lab serves as the ROA URL (file://)."""
        return self.root / "served" / host / ROA_FILES[family]

    def installed(self, host: str, family: str) -> Path:
        """Where the host's bird.conf includes the ROA file from in the lab."""
        return self.root / "roa" / host / ROA_FILES[family]

    def served_json(self, host: str) -> Path:
        """The ROA JSON the lab serves as the JSON URL (file://)."""
        return self.root / "served" / host / ROA_JSON

    def installed_json(self, host: str) -> Path:
        """The last good ROA JSON the host's stayrtr serves in the lab."""
        return self.root / "rtr" / host / ROA_JSON

    def registry_roas(self, family: str) -> list[Roa]:
        return [] if self.registry is None else registry_roas(self.registry, family)

    def tunnel_peers(self, host: str) -> list[Dn42Peer]:
        return [p for p in self.topo.dn42_peers if p.reflector == host and p.tunnel is not None]

    def runs(self, host: str, interface: str) -> bool:
        """Whether `interface` of `host` is a DN42 tunnel (started here, not as a link)."""
        return any(p.tunnel and p.tunnel.interface == interface for p in self.tunnel_peers(host))

    # --- before anything starts ---------------------------------------------------

    def prepare(self, artifacts: Mapping[str, Mapping[str, Any]]) -> None:
        """Keys, and the ROA files: served from the lab directory and installed once (as
        the timer's first run would); `lab_includes` points bird.conf at them."""
        for peer in self.topo.dn42_peers:
            if peer.tunnel is None:
                continue
            self.reflector_keys.setdefault(peer.reflector, wgkeys.generate_private_key())
            planned = artifacts[peer.reflector]["wireguard"][peer.tunnel.interface]["peers"][0]
            known = self.secrets_dir and test_peer_key(
                self.secrets_dir, peer.name, str(planned["publicKey"])
            )
            self.peer_keys[peer.node] = known or wgkeys.generate_private_key()
            self.psks[peer.node] = wgkeys.generate_psk()
        for host, rendered in artifacts.items():
            peers = [p for p in self.topo.dn42_peers if p.reflector == host]
            if rendered.get("dn42Rtr"):
                roas = peer_roas(peers) + self.registry_roas("ipv4") + self.registry_roas("ipv6")
                for path in (self.served_json(host), self.installed_json(host)):
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(roa_json(roas))
            if not rendered.get("dn42Roa"):
                continue
            for family in ("ipv4", "ipv6"):
                registry = "".join(
                    f"route {r.prefix} max {r.max_length} as {r.asn};\n"
                    for r in self.registry_roas(family)
                )
                for path in (self.served(host, family), self.installed(host, family)):
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(roa_lines(peers, family) + registry)

    # --- the reflector's end ------------------------------------------------------

    def start_reflector_tunnel(
        self, host: str, ns: str, interface: str, spec: Mapping[str, Any], rundir: Path, log: Path
    ) -> daemons.Daemon:
        """The rendered DN42 interface: wireguard-go, link-local address, the rendered
        postSetup (IPv4 pair), keys, the peer (its lab key; it dials us), MTU, up."""
        (peer,) = [
            p for p in self.tunnel_peers(host) if p.tunnel and p.tunnel.interface == interface
        ]
        argv = netns.ns_argv(ns, ["wireguard-go", "-f", interface], rundir)
        daemon = daemons.start(f"{host}/wireguard-go {interface}", argv, log)
        try:
            _wait_socket(rundir / "wireguard" / f"{interface}.sock", daemon)
            netns.ip_batch(ns, [f"address add {ip} dev {interface} nodad" for ip in spec["ips"]])
            if spec.get("postSetup"):
                netns.ns_run(ns, str(spec["postSetup"]).split(), run_dir=rundir)
            private = install_secret(rundir, spec["privateKeyFile"], self.reflector_keys[host])
            (wg_peer,) = spec["peers"]
            wg = ["wg", "set", interface, "private-key", private]
            wg += ["listen-port", str(spec["listenPort"])]
            wg += ["peer", wgkeys.public_key_of(self.peer_keys[peer.node])]
            if wg_peer.get("presharedKeyFile"):
                psk = install_secret(rundir, wg_peer["presharedKeyFile"], self.psks[peer.node])
                wg += ["preshared-key", psk]
            wg += ["allowed-ips", ",".join(wg_peer["allowedIPs"])]
            netns.ns_run(ns, wg, run_dir=rundir)
            netns.ip_batch(ns, [f"link set {interface} mtu {spec['mtu']} up"])
        except LabError:
            daemons.stop(daemon)
            raise
        return daemon

    # --- the peer ---------------------------------------------------------------------

    def start_peer_tunnel(
        self, peer: Dn42Peer, ns: str, artifacts: Mapping[str, Any], rundir: Path, log: Path
    ) -> daemons.Daemon:
        """The peer's end: wireguard-go dialling the reflector's underlay address on the
        rendered listen port, its link-local address (the plan's neighbor), default
        routes through the tunnel."""
        assert peer.tunnel is not None
        spec = artifacts["wireguard"][peer.tunnel.interface]
        argv = netns.ns_argv(ns, ["wireguard-go", "-f", PEER_INTERFACE], rundir)
        daemon = daemons.start(f"{peer.node}/wireguard-go {PEER_INTERFACE}", argv, log)
        try:
            _wait_socket(rundir / "wireguard" / f"{PEER_INTERFACE}.sock", daemon)
            addresses = [f"address add {peer.neighbor}/64 dev {PEER_INTERFACE} nodad"]
            if peer.tunnel.peer_ipv4:
                addresses.append(
                    f"address add {peer.tunnel.peer_ipv4}/32 peer {peer.reflector_ipv4}/32 "
                    f"dev {PEER_INTERFACE}"
                )
            netns.ip_batch(ns, addresses)
            key = self.peer_keys[peer.node]
            keyfile = install_secret(rundir, PEER_KEY, key)
            wg = ["wg", "set", PEER_INTERFACE, "private-key", keyfile]
            wg += ["peer", wgkeys.public_key_of(self.reflector_keys[peer.reflector])]
            if spec["peers"][0].get("presharedKeyFile"):
                psk = install_secret(rundir, PEER_PSK, self.psks[peer.node])
                wg += ["preshared-key", psk]
            wg += ["endpoint", f"{peer.tunnel.reflector_underlay}:{spec['listenPort']}"]
            wg += ["persistent-keepalive", str(PEER_KEEPALIVE)]
            wg += ["allowed-ips", "0.0.0.0/0,::/0"]
            netns.ns_run(ns, wg, run_dir=rundir)
            via = peer.tunnel.reflector_link_local
            netns.ip_batch(
                ns,
                [
                    f"link set {PEER_INTERFACE} mtu {spec['mtu']} up",
                    # The rest of DN42 is behind the reflector, IPv4 too (RFC 5549).
                    f"route replace 0.0.0.0/0 via inet6 {via} dev {PEER_INTERFACE}",
                    f"route replace ::/0 via {via} dev {PEER_INTERFACE}",
                ],
            )
        except LabError:
            daemons.stop(daemon)
            raise
        return daemon

    # --- the ROA refresh ----------------------------------------------------------------

    def serve_roa(self, host: str, family: str, text: str) -> None:
        self.served(host, family).write_text(text)

    def refresh_roa(
        self, host: str, socket: Path, script: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """What the timer's unit runs (the rendered arguments), against the lab's files,
        its bird.conf and BIRD; `script` replaces the core's (bench/roa_refresh.py
        compares versions; bird-config-loads.sh must sit beside it)."""
        rendered: list[str] = saved_artifacts(self.lab_dir)[host]["dn42Roa"]["arguments"]
        flags = [word for word in rendered if word.startswith("--")]
        quads = [word for word in rendered if not word.startswith("--")]
        args = list(flags)
        for i in range(0, len(quads), 4):  # family url file table: the lab's url and file
            family, _url, _file, table = quads[i : i + 4]
            args += [family, f"file://{self.served(host, family)}"]
            args += [str(self.installed(host, family)), table]
        env = {
            **os.environ,
            "BIRD": location.bird_tool("bird"),
            "BIRDC": location.bird_tool("birdc"),
            "BIRDC_SOCKET": str(socket),
            # up.node_dir's bird.conf: the config this BIRD runs.
            "BIRD_CONF": str(self.lab_dir / "nodes" / host / "bird.conf"),
        }
        return subprocess.run(
            ["bash", str(script or roa_script()), *args],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )

    # --- RPKI over RTR ---------------------------------------------------------------

    def start_rtr_cache(
        self, host: str, ns: str, rtr: Mapping[str, Any], log: Path
    ) -> daemons.Daemon:
        """The host's local stayrtr as the NixOS unit runs it (the rendered bind and
        refresh), serving the lab's last good JSON; started before BIRD."""
        if shutil.which("stayrtr") is None:
            raise MissingToolError(
                f'{host} uses RPKI over RTR (dn42_roa.source = "rtr"): the lab needs '
                "stayrtr (apt-get install stayrtr)"
            )
        argv = ["stayrtr", "-bind", str(rtr["bind"]), "-cache", str(self.installed_json(host))]
        argv += ["-refresh", str(rtr["refreshSeconds"]), "-checktime=false", "-metrics.addr="]
        argv += ["-loglevel", "warn"]
        daemon = daemons.start(f"{host}/stayrtr", netns.ns_argv(ns, argv), log)
        # Listening before BIRD starts: BIRD's first connection would otherwise
        # fail and wait for its retry (30 s) with empty ROA tables.
        address, _, port = str(rtr["bind"]).rpartition(":")
        probe = netns.ns_argv(ns, ["bash", "-c", f"exec 3<>/dev/tcp/{address}/{port}"])
        deadline = time.monotonic() + 10
        while subprocess.run(probe, capture_output=True, check=False).returncode != 0:
            if not daemons.alive(daemon) or time.monotonic() > deadline:
                daemons.stop(daemon)
                raise LabError(
                    f"{daemon.name} does not listen on {rtr['bind']}: {daemons.log_tail(daemon)}"
                )
            time.sleep(0.1)
        return daemon

    def serve_json(self, host: str, roas: list[Roa]) -> None:
        self.served_json(host).write_text(roa_json(roas))

    def refresh_rtr(self, host: str) -> subprocess.CompletedProcess[str]:
        """What the RTR timer's unit runs (the rendered arguments), the lab's URL and file."""
        rendered: list[str] = saved_artifacts(self.lab_dir)[host]["dn42Rtr"]["arguments"]
        flags = [word for word in rendered if word.startswith("--")]
        args = [*flags, f"file://{self.served_json(host)}", str(self.installed_json(host))]
        return subprocess.run(
            ["bash", str(rtr_script()), *args], capture_output=True, text=True, check=False
        )


def peer_bird_config(peer: Dn42Peer, *, extra_ipv4: int = 0, extra_ipv6: int = 0) -> str:
    """The stand-in's BIRD: one session over IPv6 link-local carrying IPv4 (extended next
    hop) and IPv6, announcing its statics (and `extra_*` more, see peer.extra_prefixes)."""
    assert peer.tunnel is not None

    def static(name: str, family: str, prefixes: tuple[str, ...] | list[str]) -> str:
        routes = "\n".join(f"  route {p} unreachable;" for p in prefixes)
        return f"protocol static {name} {{\n  {family};\n{routes}\n}}\n"

    more4, more6 = extra_prefixes(extra_ipv4, extra_ipv6)
    extras = (static("extra4", "ipv4", more4) if more4 else "") + (
        static("extra6", "ipv6", more6) if more6 else ""
    )
    return f"""\
# Lab stand-in for the DN42 peer {peer.name} of {peer.reflector}; written by ibgp-tunnel lab.
router id {peer.tunnel.peer_ipv4 or peer.tunnel.peer_underlay};

protocol device {{
  scan time 10;
}}

{static("announce4", "ipv4", peer.announce_ipv4)}
{static("announce6", "ipv6", peer.announce_ipv6)}
{extras}protocol bgp to_{peer.reflector.replace("-", "_")} {{
  local as {peer.asn};
  neighbor {peer.tunnel.reflector_link_local} as {peer.reflector_asn};
  interface "{PEER_INTERFACE}";
  source address {peer.neighbor};
  ipv4 {{
    import all;
    export where source = RTS_STATIC;
    extended next hop on;
  }};
  ipv6 {{
    import all;
    export where source = RTS_STATIC;
  }};
}}
"""


def _wait_socket(path: Path, daemon: daemons.Daemon, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not path.exists():
        if not daemons.alive(daemon):
            raise LabError(f"{daemon.name} exited: {daemons.log_tail(daemon)}")
        if time.monotonic() > deadline:
            raise LabError(f"{daemon.name}: {path} did not appear within {timeout:.0f} s")
        time.sleep(0.05)


def running(lab_dir: Path, topo: Topology, artifacts: Mapping[str, Mapping[str, Any]]) -> Dn42Lab:
    """The running lab's DN42 side, its keys read back from where `up` installed them
    (so a restarted tunnel gets the very keys its peer expects)."""
    dn42 = Dn42Lab(lab_dir, topo)
    for peer in topo.dn42_peers:
        if peer.tunnel is None:
            continue
        spec = artifacts[peer.reflector]["wireguard"][peer.tunnel.interface]
        reflector_run = lab_dir / "nodes" / peer.reflector / "run"
        peer_run = lab_dir / "nodes" / peer.node / "run"
        dn42.reflector_keys[peer.reflector] = read_installed_secret(
            reflector_run, spec["privateKeyFile"]
        )
        dn42.peer_keys[peer.node] = read_installed_secret(peer_run, PEER_KEY)
        if spec["peers"][0].get("presharedKeyFile"):
            dn42.psks[peer.node] = read_installed_secret(peer_run, PEER_PSK)
    return dn42


def with_origins(config: str, origins: Mapping[str, int]) -> str:
    """The stand-in's BIRD config (`peer_bird_config`) announcing `origins` too (prefix ->
    origin AS, e.g. a share of DN42's registry): statics, exported with the origin
    prepended, so the reflector sees the path `<peer> <origin>` a real DN42 route has."""
    if not origins:
        return config
    by_family: dict[int, dict[int, list[str]]] = {4: {}, 6: {}}
    for prefix, asn in origins.items():
        version = ipaddress.ip_network(prefix).version
        by_family[version].setdefault(asn, []).append(prefix)
    statics, cases = [], []
    for version, groups in by_family.items():
        prefixes = [p for group in groups.values() for p in group]
        if not prefixes:
            continue
        routes = "\n".join(f"  route {p} unreachable;" for p in prefixes)
        statics.append(f"protocol static origins{version} {{\n  ipv{version};\n{routes}\n}}\n")
        tests = "\n".join(
            f"    if net ~ [ {', '.join(group)} ] then bgp_path.prepend({asn});"
            for asn, group in groups.items()
        )
        cases.append(f"  if net.type = NET_IP{version} then {{\n{tests}\n  }}")
    origin_filter = (
        "filter dn42_origins {\n  if source != RTS_STATIC then reject;\n"
        + "\n".join(cases)
        + "\n  accept;\n}\n"
    )
    head, bgp = config.split("protocol bgp ", 1)
    bgp = bgp.replace("export where source = RTS_STATIC;", "export filter dn42_origins;")
    return head + "\n".join(statics) + "\n" + origin_filter + "\nprotocol bgp " + bgp

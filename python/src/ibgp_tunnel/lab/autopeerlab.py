"""Self-service DN42 peering in the lab: the apply daemon in the reflector's
namespace as the NixOS unit runs it (its state under the lab directory instead
of /var/lib, wireguard-go instead of kernel WireGuard), and outside DN42
namespaces: strangers with their own WireGuard key and BIRD that are in no plan,
reach the reflector over an underlay veth and get their tunnel only from a
spool entry.

The reflector side runs only what the core rendered and the apply unit applied;
the outside router is the lab's (in real life it is somebody else's)."""

from __future__ import annotations

import ipaddress
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ibgp_tunnel import keys as wgkeys
from ibgp_tunnel.autopeer.state import DEFAULT_STATE_DIR, StateDir
from ibgp_tunnel.lab import daemons, location, netns, state
from ibgp_tunnel.lab.errors import LabError
from ibgp_tunnel.lab.labkeys import install_secret

OUTSIDE_INTERFACE = "wg0"
# The outside routers' underlay: 192.0.2.0/24 (TEST-NET-1), a /30 each, unused
# by the lab's topology (198.18/15, 198.51.100/24, RFC 1918 LANs).
UNDERLAY = ipaddress.ip_network("192.0.2.0/24")
OUTSIDE_KEY = "/run/lab-secrets/outside.key"
# Where an outside router's WireGuard listens: a request with its endpoint makes
# the reflector dial it; without one, it dials the reflector's autopeer port
# (nixos-fw opens the range, allowedUDPPortRanges, and admits the interfaces'
# group).
OUTSIDE_PORT = 51900


def state_dir(lab_dir: Path, host: str) -> StateDir:
    """The host's autopeer state (/var/lib/ibgp-tunnel/autopeer on a real host)."""
    return StateDir(lab_dir / "nodes" / host / "autopeer")


def enabled(plan: Mapping[str, Any], host: str) -> bool:
    """Whether the plan turns autopeer on for this host (a reflector: the core
    refuses it anywhere else)."""
    autopeer = plan.get("hosts", {}).get(host, {}).get("autopeer")
    return isinstance(autopeer, Mapping) and autopeer.get("enable") is True


def spec_file(lab_dir: Path, host: str) -> Path:
    """The host's spec, as render_autopeers takes it (written by `up`)."""
    return lab_dir / "nodes" / host / "autopeer-spec.json"


def lab_include(lab_dir: Path, host: str, config: str) -> str:
    """bird.conf with the autopeer include pointed at the lab's state."""
    line = f'include "{StateDir(DEFAULT_STATE_DIR).bird_include}";'
    return config.replace(line, f'include "{state_dir(lab_dir, host).bird_include}";')


def prepare(lab_dir: Path, host: str, plan_path: Path, dn42: Any, run_dir: Path) -> None:
    """Before the host's BIRD starts: the state directory (its include empty), the
    host's DN42 private key at the rendered path in its private /run (generated
    like the static tunnels' one, unless they gave it one), the spec file."""
    state_dir(lab_dir, host).create()
    key = dn42.reflector_keys.setdefault(host, wgkeys.generate_private_key())
    install_secret(run_dir, dn42_private_key_file(), key)
    write_spec(lab_dir, host, plan_path)


def dn42_private_key_file() -> str:
    """Where the DN42 tunnels' private key is on a host (the core's dn42 default)."""
    from ibgp_tunnel import paths

    return f"{paths.defaults()['secrets_dir']}/{paths.dn42_defaults()['secret_private_key']}"


_SPEC = """
{ coreFile, planFile, host }:
let core = import coreFile; in core.hostFromPlan (core.readPlan planFile) host
"""


def write_spec(lab_dir: Path, host: str, plan_path: Path) -> None:
    """The spec the apply unit renders autopeers against: the host's spec from the
    plan as JSON (on NixOS the module writes the same from its config)."""
    from ibgp_tunnel.core import evaluate_core

    spec = evaluate_core(_SPEC, "the Nix core refused the plan", planFile=str(plan_path), host=host)
    spec_file(lab_dir, host).write_text(json.dumps(spec) + "\n")


def apply_argv(lab_dir: Path, host: str, table: str) -> list[str]:
    """`dn42 autopeer apply --watch` as the apply unit runs it, with the lab's paths
    (BIRD's socket at its default place in the host's private /run)."""
    registry = location.dn42_registry()
    st = state_dir(lab_dir, host)
    argv = [sys.executable, "-m", "ibgp_tunnel.cli", "dn42", "autopeer", "apply", "--watch"]
    argv += ["--state-dir", str(st.root), "--spec", str(spec_file(lab_dir, host))]
    argv += ["--bird-conf", str(lab_dir / "nodes" / host / "bird.conf")]
    argv += ["--bird-socket", "/run/bird/bird.ctl"]
    argv += ["--bird", location.bird_tool("bird"), "--birdc", location.bird_tool("birdc")]
    # The lab's registry (its data/ directory's parent: the checkout), else the state's.
    argv += ["--registry", str(registry.parent if registry else st.registry)]
    argv += ["--nft-table", table, "--wireguard-go"]
    return argv


# The host's private /run (netns.ns_argv) with the lab directory still at its own
# path inside: the units' state, spec and bird.conf live there, and the lab
# directory is itself under /run by default.
_PRIVATE_RUN_WITH_LAB = (
    'if [ -n "$1" ]; then mkdir -p "$0/$1" && mount -n --bind "/run/$1" "$0/$1"; fi && '
    'mount -n --rbind "$0" /run && shift && exec "$@"'
)


def ns_argv(lab_dir: Path, host: str, ns: str, argv: list[str]) -> list[str]:
    """`argv` in the host's namespace and private /run, as its units run there."""
    run_dir = lab_dir / "nodes" / host / "run"
    below = str(lab_dir.relative_to("/run")) if lab_dir.is_relative_to("/run") else ""
    wrapper = ["unshare", "--mount", "--propagation", "private", "sh", "-c"]
    wrapper += [_PRIVATE_RUN_WITH_LAB, str(run_dir), below]
    return ["ip", "netns", "exec", ns, *wrapper, *argv]


def start_apply(lab_dir: Path, host: str, ns: str, table: str) -> daemons.Daemon:
    state_dir(lab_dir, host).create()
    log = lab_dir / "nodes" / host / "autopeer-apply.log"
    argv = ns_argv(lab_dir, host, ns, apply_argv(lab_dir, host, table))
    return daemons.start(f"{host}/autopeer-apply", argv, log)


def web_available() -> bool:
    """Whether this ibgp-tunnel has the web service (autopeer/serve.py, the web part)."""
    import importlib.util

    return importlib.util.find_spec("ibgp_tunnel.autopeer.serve") is not None


def start_web(
    lab_dir: Path, host: str, ns: str, autopeer: Mapping[str, Any]
) -> daemons.Daemon | None:
    """The web service as its unit runs it, on the plan's listen address and port
    in the host's namespace, sharing the state directory; None without one."""
    if not web_available():
        return None
    st = state_dir(lab_dir, host)
    registry = location.dn42_registry()
    argv = [sys.executable, "-m", "ibgp_tunnel.cli", "dn42", "autopeer", "serve"]
    argv += ["--state-dir", str(st.root), "--host-name", host]
    # As the unit: the registry the apply unit trusts, and the spec (requests are
    # checked by the core before a challenge is issued).
    argv += ["--registry", str(registry.parent if registry else st.registry)]
    argv += ["--spec", str(spec_file(lab_dir, host))]
    argv += ["--listen-address", str(autopeer.get("listen_address", "127.0.0.1"))]
    argv += ["--listen-port", str(int(autopeer.get("listen_port", 8042)))]
    options = (
        ("rate_limit", "--rate-limit"),
        ("max_peers", "--max-peers"),
        ("challenge_ttl", "--challenge-ttl"),
    )
    for key, option in options:
        if key in autopeer:
            argv += [option, str(int(autopeer[key]))]
    if "max_per_asn" in autopeer:
        argv += ["--max-per-asn", str(int(autopeer["max_per_asn"]))]
    log = lab_dir / "nodes" / host / "autopeer-web.log"
    start = log.stat().st_size if log.exists() else 0
    daemon = daemons.start(f"{host}/autopeer-web", ns_argv(lab_dir, host, ns, argv), log)
    # Up once it listens (its first line says so; the log is appended to), as its
    # unit would be active.
    _wait(
        lambda: "listening on " in _text(log, start) or not daemons.alive(daemon),
        f"the autopeer web service's listen line in {log}",
        timeout=60,
    )
    if not daemons.alive(daemon):
        raise LabError(f"the autopeer web service exited: {_text(log, start)[-2000:]}")
    return daemon


def _text(path: Path, start: int) -> str:
    with open(path, "rb") as handle:
        handle.seek(start)
        return handle.read().decode(errors="replace")


# One HTTP request with the standard library, run inside a namespace.
_API_CLIENT = """
import json, sys, urllib.error, urllib.request
method, url, body = sys.argv[1], sys.argv[2], sys.argv[3]
data = body.encode() if method == "POST" else None
req = urllib.request.Request(url, data=data, method=method,
                             headers={"Content-Type": "application/json"})
try:
    with urllib.request.urlopen(req, timeout=30) as answer:
        status, raw = answer.status, answer.read()
except urllib.error.HTTPError as error:
    status, raw = error.code, error.read()
print(json.dumps({"status": status, "body": json.loads(raw)}))
"""


def api_base(plan: Mapping[str, Any], host: str) -> str:
    """The web service's address as the host's reverse proxy reaches it."""
    autopeer = plan["hosts"][host]["autopeer"]
    address = autopeer.get("listen_address", "127.0.0.1")
    return f"http://{address}:{int(autopeer.get('listen_port', 8042))}"


def call_api(ns: str, method: str, url: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    """One request from inside `ns` (the reflector's namespace): status and JSON body."""
    argv = ["ip", "netns", "exec", ns, sys.executable, "-I", "-c", _API_CLIENT, method, url]
    argv.append(json.dumps(body) if body is not None else "")
    answer = json.loads(netns.run(argv, timeout=60).stdout)
    return int(answer["status"]), answer["body"]


def delete_tun_links(ns: str) -> None:
    """The TUN devices of a namespace (wireguard-go's, the apply unit's ones too):
    deleting the namespace alone leaves their wireguard-go running."""
    out = netns.run(["ip", "-n", ns, "-o", "link", "show", "type", "tun"], check=False).stdout
    for match in re.finditer(r"^\d+: ([^:@]+)", out, re.M):
        netns.run(["ip", "-n", ns, "link", "delete", "dev", match[1]], check=False)


# --- an outside DN42 router ----------------------------------------------------------


@dataclass(frozen=True)
class Outside:
    """A stranger's DN42 router: in no plan, its own key, its own BIRD."""

    node: str
    netns: str
    asn: int
    reflector: str
    index: int
    private_key: str
    neighbor: str  # its link-local address on the tunnel
    announce_ipv4: tuple[str, ...] = ()
    announce_ipv6: tuple[str, ...] = ()
    port: int | None = None  # its WireGuard port; OUTSIDE_PORT + index unless given

    @property
    def public_key(self) -> str:
        return wgkeys.public_key_of(self.private_key)

    @property
    def underlay(self) -> tuple[str, str]:
        """(reflector's, outside's) underlay addresses."""
        base = int(UNDERLAY.network_address) + 4 * self.index
        return str(ipaddress.ip_address(base + 1)), str(ipaddress.ip_address(base + 2))

    @property
    def listen_port(self) -> int:
        return self.port if self.port is not None else OUTSIDE_PORT + self.index

    def request(self, *, endpoint: bool = True, **more: Any) -> dict[str, Any]:
        """What it asks for (the request of a spool entry or of the API): with its
        endpoint the reflector dials it, without one it dials in (OUTSIDE_PORT)."""
        base = {"asn": self.asn, "public_key": self.public_key, "neighbor": self.neighbor}
        if endpoint:
            base["endpoint"] = f"{self.underlay[1]}:{self.listen_port}"
        return base | more

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "dn42-outside",
            "netns": self.netns,
            "asn": self.asn,
            "reflector": self.reflector,
            "index": self.index,
            "neighbor": self.neighbor,
            "run_dir": "",
            "wireguard": [OUTSIDE_INTERFACE],
        }


def add_outside(
    st: state.LabState,
    reflector: str,
    asn: int,
    *,
    index: int = 0,
    announce_ipv4: tuple[str, ...] = (),
    announce_ipv6: tuple[str, ...] = (),
    private_key: str | None = None,
    neighbor: str | None = None,
    port: int | None = None,
) -> Outside:
    """Its namespace and the underlay veth to the reflector (recorded in the lab's
    state, so `lab down` removes them). Its key, link-local address and port are
    made up unless given (the VM test's outside router has its own)."""
    node = f"as{asn}"
    outside = Outside(
        node=node,
        netns=f"{st.netns_prefix}o{index}",
        asn=asn,
        reflector=reflector,
        index=index,
        private_key=private_key or wgkeys.generate_private_key(),
        neighbor=neighbor or f"fe80::{asn % 10000:x}:{index + 1}",
        announce_ipv4=announce_ipv4,
        announce_ipv6=announce_ipv6,
        port=port,
    )
    reflector_ns = st.nodes[reflector]["netns"]
    if outside.netns in netns.list_netns():
        raise LabError(f"namespace {outside.netns} exists already")
    netns.add_netns(outside.netns)
    st.netns.append(outside.netns)
    run_dir = Path(st.lab_dir) / "nodes" / node / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    st.nodes[node] = outside.to_json() | {"run_dir": str(run_dir)}
    st.save()
    ours, theirs = outside.underlay
    netns.add_veth(reflector_ns, f"ao{index}", outside.netns, "eth0")
    netns.ip_batch(reflector_ns, [f"address add {ours}/30 dev ao{index}", f"link set ao{index} up"])
    netns.ip_batch(
        outside.netns,
        ["link set lo up", f"address add {theirs}/30 dev eth0", "link set eth0 up"]
        + [f"address add {ipaddress.ip_network(p)[1]}/32 dev lo" for p in announce_ipv4]
        + [f"address add {ipaddress.ip_network(p)[1]}/128 dev lo" for p in announce_ipv6],
    )
    netns.sysctl(outside.netns, {"net.ipv6.conf.all.accept_dad": 0})
    return outside


def start_outside(
    st: state.LabState,
    outside: Outside,
    peering: Mapping[str, Any],
    reflector_public_key: str,
    *,
    dial: bool = True,
) -> None:
    """Its tunnel to what the reflector told it (`peering`: the status file's
    peer: listen_port, mtu); its BIRD is `outside_bird_config`, started by the
    caller with lab.up.start_bird. Without `dial` it only listens (the reflector
    must dial it: its request had an endpoint); `dial_reflector` turns it on."""
    lab_dir = Path(st.lab_dir)
    run_dir = lab_dir / "nodes" / outside.node / "run"
    log = lab_dir / "nodes" / outside.node / "wireguard-go.log"
    argv = netns.ns_argv(outside.netns, ["wireguard-go", "-f", OUTSIDE_INTERFACE], run_dir)
    daemon = daemons.start(f"{outside.node}/wireguard-go", argv, log)
    st.daemons.append(daemon)
    st.save()
    socket = run_dir / "wireguard" / f"{OUTSIDE_INTERFACE}.sock"
    _wait(lambda: socket.exists(), f"{socket}")
    key = install_secret(run_dir, OUTSIDE_KEY, outside.private_key)
    ours, _ = outside.underlay
    wg = ["wg", "set", OUTSIDE_INTERFACE, "private-key", key]
    wg += ["listen-port", str(outside.listen_port), "peer", reflector_public_key]
    if dial:
        wg += ["endpoint", f"{ours}:{int(peering['listen_port'])}", "persistent-keepalive", "5"]
    wg += ["allowed-ips", "0.0.0.0/0,::/0"]
    netns.ip_batch(
        outside.netns, [f"address add {outside.neighbor}/64 dev {OUTSIDE_INTERFACE} nodad"]
    )
    netns.ns_run(outside.netns, wg, run_dir=run_dir)
    mtu = int(peering.get("mtu") or 1420)
    netns.ip_batch(outside.netns, [f"link set {OUTSIDE_INTERFACE} mtu {mtu} up"])
    st.nodes[outside.node]["bird_socket"] = str(run_dir / "bird" / "bird.ctl")
    st.save()


def dial_reflector(
    st: state.LabState, outside: Outside, peering: Mapping[str, Any], reflector_public_key: str
) -> None:
    """The outside router dials the reflector's port for this peering (keepalive 5 s)."""
    run_dir = Path(st.lab_dir) / "nodes" / outside.node / "run"
    ours, _ = outside.underlay
    wg = ["wg", "set", OUTSIDE_INTERFACE, "peer", reflector_public_key]
    wg += ["endpoint", f"{ours}:{int(peering['listen_port'])}", "persistent-keepalive", "5"]
    netns.ns_run(outside.netns, wg, run_dir=run_dir)


def outside_bird_config(outside: Outside, reflector_link_local: str, reflector_asn: int) -> str:
    """One multiprotocol session over link-local (IPv4 with extended next hop), as
    DN42 peers run it, announcing its statics."""

    def static(name: str, family: str, prefixes: tuple[str, ...]) -> str:
        routes = "\n".join(f"  route {p} unreachable;" for p in prefixes)
        return f"protocol static {name} {{\n  {family};\n{routes}\n}}\n"

    router_id = ipaddress.ip_address(int(UNDERLAY.network_address) + 4 * outside.index + 2)
    return f"""\
# Lab stand-in for an outside DN42 router (AS{outside.asn}); written by ibgp-tunnel lab.
router id {router_id};

protocol device {{
  scan time 10;
}}

{static("announce4", "ipv4", outside.announce_ipv4)}
{static("announce6", "ipv6", outside.announce_ipv6)}
protocol bgp to_{outside.reflector.replace("-", "_")} {{
  local as {outside.asn};
  neighbor {reflector_link_local} as {reflector_asn};
  interface "{OUTSIDE_INTERFACE}";
  source address {outside.neighbor};
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


def _wait(check: Any, what: str, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise LabError(f"{what} did not appear within {timeout:.0f} s")
        time.sleep(0.05)

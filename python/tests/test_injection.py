"""Injection attempts through every path a value can take into bird.conf, the
nft rules, the WireGuard unit script or a sops secret name:

(a) `ibgp-tunnel check` on a plan: exit 1, a finding at the field's TOML path;
(b) the core without any check: `render (hostFromPlan plan host)` on the raw
    plan, and `render` on a hand-made spec: an evaluation error naming the option;
(c) the NixOS module: the value as an option (a type error or a failed
    assertion naming the option), and the injected plan as `plan` (refused).

Every attempt is refused on every path; a test fails if any path accepts one.
Misroutes (a default route in two halves) are valid tokens, so render itself
does not refuse them: `problems`/`planProblems` do, on every path."""

from __future__ import annotations

import copy
import json
import subprocess
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tomlkit
from cli_helpers import CORPUS, run
from moduleeval import REPO, eval_module, needs_inputs
from nixcore import CORE, needs_nix

pytestmark = needs_nix

BASE_FILE = CORPUS / "good" / "base.toml"
BASE: dict[str, Any] = tomllib.loads(BASE_FILE.read_text())
Edit = Callable[[dict[str, Any]], None]


def nix_str(text: str) -> str:
    """A Nix string literal for any text (no interpolation, no escapes lost)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")
    escaped = escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f'"{escaped}"'


def nix_value(value: Any) -> str:
    if isinstance(value, str):
        return nix_str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[ " + " ".join(nix_value(v) for v in value) + " ]"
    if isinstance(value, dict):
        return "{ " + " ".join(f"{nix_attr(k)} = {nix_value(v)};" for k, v in value.items()) + " }"
    raise TypeError(value)


def nix_attr(name: str) -> str:
    return name if name.isidentifier() and "-" not in name else nix_str(name)


@dataclass(frozen=True)
class Attempt:
    name: str
    edit: Edit  # applied to the base plan's data
    host: str  # the host whose rendering the value reaches
    toml_path: str  # where `check` must report it
    option: list[str]  # option path under services.ibgpTunnel
    value: Any  # the value as an option / spec field (Nix)
    shown: str  # how the option path appears in the core's and module's messages

    def plan(self) -> dict[str, Any]:
        data = copy.deepcopy(BASE)
        self.edit(data)
        return data


def _set(path: list[Any], value: Any) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        target = data
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return edit


def _rename(table: list[str], old: str, new: str) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        target = data
        for part in table:
            target = target[part]
        target[new] = target.pop(old)

    return edit


def _both(*edits: Edit) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        for one in edits:
            one(data)

    return edit


EVIL = "protocol static evil { ipv4; route 0.0.0.0/0 blackhole; }"
ZONE_BREAKOUT = f"fe80::1%eth0 as 1; }};\n{EVIL}\n#"
STATIC = f"104.16.0.0/13 ]; {EVIL}; define X = [ 1.0.0.0/8"
DEFINE = (
    "104.16.0.0/13 unreachable; }\ndefine OWNAS = 1;\nprotocol static x { ipv4; route 0.0.0.0/0"
)
# Fullwidth digits, which Python's int() and str.isdigit() would accept.
WIDE_13 = "\uff11\uff13"
O = "services.ibgpTunnel"  # noqa: E741 (the option root, as in the messages)

PEER1 = ["hosts", "dmz", "dn42_peers", "peer1"]
INBOUND = {"prefix": "172.22.0.53/32", "proto": "tcp", "port": 443}
TUNNEL = ["dn42Peers", "peer1", "tunnel"]

ATTEMPTS = [
    # DN42 tunnels: values reaching bird.conf, the WireGuard unit script
    # (postSetup, endpoint, key), and the ROA unit (URL, timer).
    Attempt(
        "dn42-link-local-breakout",
        _set([*PEER1, "link_local"], f'fe80::38/64";\n{EVIL}\n#'),
        "dmz",
        "hosts.dmz.dn42_peers.peer1.link_local",
        [*TUNNEL, "linkLocal"],
        f'fe80::38/64";\n{EVIL}\n#',
        f"{O}.dn42Peers.peer1.tunnel.linkLocal",
    ),
    Attempt(
        "dn42-ipv4-shell",
        _both(
            _set([*PEER1, "ipv4"], "172.23.101.1/32 dev lo; reboot #"),
            _set([*PEER1, "peer_ipv4"], "172.20.42.1"),
        ),
        "dmz",
        "hosts.dmz.dn42_peers.peer1.ipv4",
        [*TUNNEL, "ipv4"],
        "172.23.101.1/32 dev lo; reboot #",
        f"{O}.dn42Peers.peer1.tunnel.ipv4",
    ),
    Attempt(
        "dn42-endpoint-shell",
        _set([*PEER1, "endpoint"], "peer.example.net$(reboot):20038"),
        "dmz",
        "hosts.dmz.dn42_peers.peer1.endpoint",
        [*TUNNEL, "endpoint"],
        "peer.example.net$(reboot):20038",
        f"{O}.dn42Peers.peer1.tunnel.endpoint",
    ),
    Attempt(
        "dn42-public-key-quote",
        _set([*PEER1, "public_key"], 'GBBBJQQRmmn4MndUJnm7O+Gu3RiJ/OHNhVwbb5pH4CU=" x'),
        "dmz",
        "hosts.dmz.dn42_peers.peer1.public_key",
        [*TUNNEL, "publicKey"],
        'GBBBJQQRmmn4MndUJnm7O+Gu3RiJ/OHNhVwbb5pH4CU=" x',
        f"{O}.dn42Peers.peer1.tunnel.publicKey",
    ),
    Attempt(
        "dn42-roa-url-shell",
        _set(["hosts", "dmz", "dn42_roa"], {"ipv4_url": "https://x.example/roa.conf;reboot"}),
        "dmz",
        "hosts.dmz.dn42_roa.ipv4_url",
        ["dn42", "roa", "ipv4Url"],
        "https://x.example/roa.conf;reboot",
        f"{O}.dn42.roa.ipv4Url",
    ),
    Attempt(
        "dn42-roa-interval-newline",
        _set(["hosts", "dmz", "dn42_roa"], {"interval": "15min\nExecStartPre=/bin/sh"}),
        "dmz",
        "hosts.dmz.dn42_roa.interval",
        ["dn42", "roa", "interval"],
        "15min\nExecStartPre=/bin/sh",
        f"{O}.dn42.roa.interval",
    ),
    # RPKI over RTR: a cache's address reaches bird.conf (`remote ... port`),
    # the JSON URL the RTR unit's ExecStart.
    Attempt(
        "dn42-rtr-cache-breakout",
        _set(
            ["hosts", "dmz", "dn42_roa"],
            {
                "source": "rtr",
                "rtr_caches": [{"address": f"127.0.0.1 port 8282; }};\n{EVIL}\n#", "port": 8282}],
            },
        ),
        "dmz",
        "hosts.dmz.dn42_roa.rtr_caches[0].address",
        ["dn42", "roa", "rtrCaches"],
        [{"address": f"127.0.0.1 port 8282; }};\n{EVIL}\n#", "port": 8282}],
        f"{O}.dn42.roa.rtrCaches",
    ),
    Attempt(
        "dn42-rtr-json-url-shell",
        _set(
            ["hosts", "dmz", "dn42_roa"],
            {"source": "rtr", "json_url": "https://x.example/roa.json;reboot"},
        ),
        "dmz",
        "hosts.dmz.dn42_roa.json_url",
        ["dn42", "roa", "jsonUrl"],
        "https://x.example/roa.json;reboot",
        f"{O}.dn42.roa.jsonUrl",
    ),
    # DN42's route collector: its neighbor and source address reach bird.conf.
    Attempt(
        "dn42-collector-neighbor-breakout",
        _set(["hosts", "dmz", "dn42_collector"], {"enable": True, "neighbor": ZONE_BREAKOUT}),
        "dmz",
        "hosts.dmz.dn42_collector.neighbor",
        ["dn42Collector"],
        {"enable": True, "neighbor": ZONE_BREAKOUT},
        f"{O}.dn42Collector",
    ),
    Attempt(
        "dn42-collector-source-breakout",
        _set(
            ["hosts", "dmz", "dn42_collector"],
            {"enable": True, "source_address": f"fd42::1;\n{EVIL}\n#"},
        ),
        "dmz",
        "hosts.dmz.dn42_collector.source_address",
        ["dn42Collector"],
        {"enable": True, "sourceAddress": f"fd42::1;\n{EVIL}\n#"},
        f"{O}.dn42Collector",
    ),
    Attempt(
        "zone-id-breakout-neighbor",
        _set(["hosts", "dmz", "dn42_peers", "peer1", "neighbor"], ZONE_BREAKOUT),
        "dmz",
        "hosts.dmz.dn42_peers.peer1.neighbor",
        ["dn42Peers", "peer1", "neighbor"],
        ZONE_BREAKOUT,
        f"{O}.dn42Peers.peer1.neighbor",
    ),
    Attempt(
        "zone-id-neighbor",
        _set(["hosts", "dmz", "dn42_peers", "peer1", "neighbor"], "fe80::1%dn42-peer1"),
        "dmz",
        "hosts.dmz.dn42_peers.peer1.neighbor",
        ["dn42Peers", "peer1", "neighbor"],
        "fe80::1%dn42-peer1",
        f"{O}.dn42Peers.peer1.neighbor",
    ),
    Attempt(
        "endpoint-shell",
        _set(["hosts", "dmz", "endpoint"], "vps.example.com$(reboot)"),
        "pve",
        "hosts.dmz.endpoint",
        ["links", "pve", "peer", "endpoint"],
        "vps.example.com$(reboot):51821",
        f"{O}.links.pve.peer.endpoint",
    ),
    Attempt(
        "endpoint-semicolon",
        _set(["hosts", "dmz", "endpoint"], "203.0.113.10;touch /x"),
        "pve",
        "hosts.dmz.endpoint",
        ["links", "pve", "peer", "endpoint"],
        "203.0.113.10:51821; touch /x",
        f"{O}.links.pve.peer.endpoint",
    ),
    Attempt(
        "interface-quote-brace",
        _set(["links", "pve", "interface"], 'wg"; } x {'),
        "pve",
        "links.pve.interface",
        ["links", "pve", "interface"],
        'wg"; } x {',
        f"{O}.links.pve.interface",
    ),
    Attempt(
        "lan-interface-quote",
        _set(["hosts", "pve", "lan_interfaces"], ['vmbr0" } oifname { "x']),
        "pve",
        "hosts.pve.lan_interfaces[0]",
        ["lanInterfaces"],
        ['vmbr0" } oifname { "x'],
        f"{O}.lanInterfaces",
    ),
    Attempt(
        # Becomes a sysctl key (net.ipv6.conf.<name>.accept_ra): '/' would
        # reach another interface's (or a parent directory's) setting.
        "accept-ra-interface-slash",
        _set(["hosts", "pve", "accept_ra_interfaces"], ["all/../default"]),
        "pve",
        "hosts.pve.accept_ra_interfaces[0]",
        ["acceptRAInterfaces"],
        ["all/../default"],
        f"{O}.acceptRAInterfaces",
    ),
    Attempt(
        "dn42-interface-dotdot",
        _set(["hosts", "dmz", "dn42_peers", "peer1", "interface"], ".."),
        "dmz",
        "hosts.dmz.dn42_peers.peer1.interface",
        ["dn42Peers", "peer1", "interface"],
        "..",
        f"{O}.dn42Peers.peer1.interface",
    ),
    Attempt(
        "link-name-traversal",
        _rename(["links"], "pve", "../../etc/x"),
        "pve",
        'links."../../etc/x"',
        ["links", "../../etc/x"],
        None,
        f'{O}.links."../../etc/x"',
    ),
    Attempt(
        "peer-name-semicolon",
        _rename(["hosts", "dmz", "dn42_peers"], "peer1", "p;1 { }"),
        "dmz",
        'hosts.dmz.dn42_peers."p;1 { }"',
        ["dn42Peers", "p;1 { }"],
        None,
        f'{O}.dn42Peers."p;1 {{ }}"',
    ),
    Attempt(
        "set-name-semicolon",
        _both(
            _rename(["prefix_sets"], "cf", "cf;x"),
            _set(["hosts", "pve", "import_sets"], ["dn42", "cf;x"]),
            _set(["hosts", "pve", "kernel_export_sets"], ["dn42"]),
            _set(["hosts", "dmz", "dn42_peers", "peer1", "export_sets"], []),
        ),
        "pve",
        'prefix_sets."cf;x"',
        ["prefixSets", "cf;x"],
        None,
        f'{O}.prefixSets."cf;x"',
    ),
    Attempt(
        "prefix-set-protocol-static",
        _set(["prefix_sets", "cf", "ipv4"], [STATIC]),
        "pve",
        "prefix_sets.cf.ipv4[0]",
        ["prefixSets", "cf", "ipv4"],
        [STATIC],
        f"{O}.prefixSets.cf.ipv4",
    ),
    Attempt(
        "announce-define",
        _set(["hosts", "dmz", "announce", "ipv4"], [DEFINE]),
        "dmz",
        "hosts.dmz.announce.ipv4[0]",
        ["announce", "ipv4"],
        [DEFINE],
        f"{O}.announce.ipv4",
    ),
    Attempt(
        "import-prefixes-static",
        _set(["hosts", "pve", "announce"], {"ipv4": [STATIC]}),
        "dmz",
        "hosts.pve.announce.ipv4[0]",
        ["links", "pve", "importPrefixes", "ipv4"],
        [STATIC],
        f"{O}.links.pve.importPrefixes.ipv4",
    ),
    Attempt(
        "import-set-expression",
        _set(["hosts", "pve", "import_sets"], ["dn42 || true"]),
        "pve",
        "hosts.pve.import_sets[0]",
        ["importSets"],
        ["dn42 || true"],
        f"{O}.importSets",
    ),
    Attempt(
        "router-id-breakout",
        _set(["hosts", "pve", "router_id"], "172.23.101.2; protocol static x {}"),
        "pve",
        "hosts.pve.router_id",
        ["routerId"],
        "172.23.101.2; protocol static x {}",
        f"{O}.routerId",
    ),
    Attempt(
        "public-key-newline",
        _set(["hosts", "dmz", "public_key"], "YkjfdfxGfR7nW+ekPkXDC7UqaEusGcubEGHBE2c2ixo=\n$(id)"),
        "pve",
        "hosts.dmz.public_key",
        ["links", "pve", "peer", "publicKey"],
        "YkjfdfxGfR7nW+ekPkXDC7UqaEusGcubEGHBE2c2ixo=\n$(id)",
        f"{O}.links.pve.peer.publicKey",
    ),
    Attempt(
        "non-ascii-digits",
        _set(["prefix_sets", "cf", "ipv4"], [f"104.16.0.0/{WIDE_13}"]),
        "pve",
        "prefix_sets.cf.ipv4[0]",
        ["prefixSets", "cf", "ipv4"],
        [f"104.16.0.0/{WIDE_13}"],
        f"{O}.prefixSets.cf.ipv4",
    ),
    Attempt(
        "huge-asn",
        _set(["hosts", "dmz", "dn42_peers", "peer1", "asn"], 2**40),
        "dmz",
        "hosts.dmz.dn42_peers.peer1.asn",
        ["dn42Peers", "peer1", "asn"],
        2**40,
        f"{O}.dn42Peers.peer1.asn",
    ),
    Attempt(
        "huge-port",
        _set(["links", "pve", "port"], 70000),
        "pve",
        "links.pve.port",
        ["links", "pve", "listenPort"],
        70000,
        f"{O}.links.pve.listenPort",
    ),
    Attempt(
        "huge-import-limit",
        _set(["tuning"], {"import_limit": 2**40}),
        "pve",
        "tuning.import_limit",
        ["tuning", "importLimit"],
        2**40,
        f"{O}.tuning.importLimit",
    ),
    # Two reflectors (issue #13): the cluster id and the link's preference reach
    # bird.conf (`rr cluster id`, `bgp_local_pref =`).
    Attempt(
        "cluster-id-breakout",
        _set(["hosts", "dmz", "cluster_id"], "172.23.101.1; protocol static x {}"),
        "dmz",
        "hosts.dmz.cluster_id",
        ["clusterId"],
        "172.23.101.1; protocol static x {}",
        f"{O}.clusterId",
    ),
    Attempt(
        "preference-expression",
        _set(["links", "pve", "preference"], "200; bgp_path.prepend(1)"),
        "pve",
        "links.pve.preference",
        ["links", "pve", "preference"],
        "200; bgp_path.prepend(1)",
        f"{O}.links.pve.preference",
    ),
    Attempt(
        "huge-preference",
        _set(["links", "pve", "preference"], 2**40),
        "pve",
        "links.pve.preference",
        ["links", "pve", "preference"],
        2**40,
        f"{O}.links.pve.preference",
    ),
    # What a client opens to DN42 (issue 19 item 4) becomes nft matches in the
    # tunnels' input and forward chains: a breakout would open everything.
    *(
        Attempt(
            f"dn42-inbound-{field}",
            _set(["hosts", "pve", "dn42_inbound"], [{**INBOUND, field: bad}]),
            host,
            f"hosts.pve.dn42_inbound[0].{field}",
            ["dn42Inbound"],
            [{**INBOUND, field: bad}],
            f"{O}.dn42Inbound",
        )
        for field, bad in (
            ("prefix", "0.0.0.0/0 accept\niifname lo"),
            ("prefix", "172.22.0.53/32 tcp dport 1-65535"),
            ("proto", "tcp dport 1-65535 accept; tcp"),
            ("port", 70000),
        )
        for host in ("pve", "dmz")
    ),
    # latency = "auto" (issue 22 item 5): the one word besides a class 1-9; the
    # class becomes a BIRD call argument, "auto" a constant's name.
    *(
        Attempt(
            f"dn42-latency-{index}",
            _set([*PEER1, "latency"], bad),
            "dmz",
            "hosts.dmz.dn42_peers.peer1.latency",
            ["dn42Peers", "peer1", "latency"],
            bad,
            f"{O}.dn42Peers.peer1.latency",
        )
        for index, bad in enumerate(
            ("auto); bgp_path.prepend(1", "AUTO", "9; }", "dn42latency_peer1", 10)
        )
    ),
    # A DN42 peer's limits (issue 22 item 4): each a number inside `... limit N action X;`.
    *(
        Attempt(
            f"dn42-{key}-{index}",
            _set([*PEER1, key], bad),
            "dmz",
            f"hosts.dmz.dn42_peers.peer1.{key}",
            ["dn42Peers", "peer1", option],
            bad,
            f"{O}.dn42Peers.peer1.{option}",
        )
        for key, option in (("receive_limit", "receiveLimit"), ("import_limit", "importLimit"))
        for index, bad in enumerate(("10 action disable; import all", 2**40, -1, 0))
    ),
]

# Values that exist only as options or spec fields (a plan derives them).
SPEC_ONLY = [
    (["privateKeyFile"], '/run/secrets/key"; rm -rf / #', f"{O}.privateKeyFile"),
    (["privateKeyFile"], "/run/secrets/../../etc/shadow", f"{O}.privateKeyFile"),
    (["links", "pve", "peer", "presharedKeyFile"], "$(id)", f"{O}.links.pve.peer.presharedKeyFile"),
    (["links", "pve", "ips"], ["10.255.255.1/30; x", "fd00::2/64"], f"{O}.links.pve.ips"),
    (["links", "pve", "neighborAddress"], "10.255.255.2 as 1; }", f"{O}.links.pve.neighborAddress"),
    # Decides `rr client;` and the import filter of a link between reflectors.
    (["links", "pve", "reflectorPeer"], "true; rr client", f"{O}.links.pve.reflectorPeer"),
    (["links", "pve", "peer", "name"], "dmz { }", f"{O}.links.pve.peer.name"),
    (["tuning", "importLimitAction"], "block; }", f"{O}.tuning.importLimitAction"),
    (["tuning", "holdTime"], 2, f"{O}.tuning.holdTime"),
]

# Valid tokens, refused as misroutes (or misplans that break the host: issue
# 19) by problems/planProblems on every path.
MISROUTES = [
    Attempt(
        "default-route-in-halves",
        _set(["hosts", "dmz", "announce", "ipv4"], ["0.0.0.0/1", "128.0.0.0/1"]),
        "dmz",
        "hosts.dmz.announce.ipv4",
        ["announce", "ipv4"],
        ["0.0.0.0/1", "128.0.0.0/1"],
        f"{O}.announce.ipv4",
    ),
    # Someone else's prefixes originated into DN42.
    Attempt(
        "dn42-export-foreign-prefixes",
        _set([*PEER1, "export_sets"], ["cf"]),
        "dmz",
        "hosts.dmz.dn42_peers.peer1.export_sets[0]",
        ["dn42Peers", "peer1", "exportSets"],
        ["cf"],
        f"{O}.dn42Peers.peer1.exportSets",
    ),
    # The /32 peer route would pull the client's tunnel address into DN42.
    Attempt(
        "dn42-peer-ipv4-captures-link",
        _both(
            _set([*PEER1, "ipv4"], "172.23.101.33"),
            _set([*PEER1, "peer_ipv4"], "10.255.255.1"),
        ),
        "dmz",
        "hosts.dmz.dn42_peers.peer1.peer_ipv4",
        [*TUNNEL, "peerIpv4"],
        "10.255.255.1",
        f"{O}.dn42Peers.peer1.tunnel.peerIpv4",
    ),
    # The tunnel's unit deletes its interface when it stops: the uplink.
    Attempt(
        "dn42-interface-uplink",
        _set([*PEER1, "interface"], "eth0"),
        "dmz",
        "hosts.dmz.dn42_peers.peer1.interface",
        ["dn42Peers", "peer1", "interface"],
        "eth0",
        f"{O}.dn42Peers.peer1.interface",
    ),
    # WireGuard bound to BFD's ports stops BFD.
    Attempt(
        "dn42-port-bfd",
        _set([*PEER1, "listen_port"], 4784),
        "dmz",
        "hosts.dmz.dn42_peers.peer1.listen_port",
        [*TUNNEL, "listenPort"],
        4784,
        f"{O}.dn42Peers.peer1.tunnel.listenPort",
    ),
    Attempt(
        "link-port-bfd",
        _set(["links", "pve", "port"], 3784),
        "pve",
        "links.pve.port",
        ["links", "pve", "listenPort"],
        3784,
        f"{O}.links.pve.listenPort",
    ),
]


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    plan = tmp_path / "plan.toml"
    plan.write_text(tomlkit.dumps(data), encoding="utf-8")
    return plan


def _nix(expression: str, **arguments: str) -> subprocess.CompletedProcess[str]:
    command = ["nix-instantiate", "--eval", "--strict", "--json", "--expr", expression]
    command += ["--argstr", "core", str(CORE)]
    for name, value in arguments.items():
        command += ["--argstr", name, value]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def _spec_update(path: list[str], value: str, base: str = "spec") -> str:
    """`base // { a = base.a // { b = value; }; }` for path [a, b]."""
    if len(path) == 1:
        return f"{base} // {{ {nix_attr(path[0])} = {value}; }}"
    head = nix_attr(path[0])
    return f"{base} // {{ {head} = {_spec_update(path[1:], value, f'{base}.{head}')}; }}"


def _refused_by_core(result: subprocess.CompletedProcess[str], shown: str) -> None:
    assert result.returncode != 0, f"the core rendered it:\n{result.stdout[:2000]}"
    assert "ibgp-tunnel:" in result.stderr and shown in result.stderr, result.stderr


RENDER_PLAN = """{ core, planFile, host }:
let c = import core; plan = builtins.fromTOML (builtins.readFile planFile);
in c.render (c.hostFromPlan plan host)
"""


def _hand_made(attempt_path: list[str], value_nix: str, host: str) -> str:
    base = f"c.hostFromPlan (c.readPlan {BASE_FILE}) {nix_str(host)}"
    return (
        "{ core }: let c = import core; spec = " + base + "; in "
        f"c.render ({_spec_update(attempt_path, value_nix)})"
    )


def _renamed_spec(attempt: Attempt) -> str:
    """A hand-made spec with an attribute renamed to the attack (names, not values)."""
    table, new = attempt.option[:-1], attempt.option[-1]
    old = {"links": "pve", "dn42Peers": "peer1", "prefixSets": "cf"}[table[0]]
    where = "spec." + ".".join(nix_attr(p) for p in table)
    renamed = f"(removeAttrs {where} [ {nix_str(old)} ]) // {{ {nix_str(new)} = {where}.{old}; }}"
    return renamed


# --- (a) check ---------------------------------------------------------------


@pytest.mark.parametrize("attempt", ATTEMPTS + MISROUTES, ids=lambda a: a.name)
def test_check_refuses(attempt: Attempt, tmp_path: Path) -> None:
    plan = _write(tmp_path, attempt.plan())
    result = run("check", "--json", plan)
    assert result.exit_code == 1, result.output
    findings = json.loads(result.stdout)["findings"]
    assert any(f["path"] == attempt.toml_path and f["severity"] == "error" for f in findings), (
        findings
    )


# --- (b) the core without a check -------------------------------------------


@pytest.mark.parametrize("attempt", ATTEMPTS, ids=lambda a: a.name)
def test_core_refuses_the_raw_plan(attempt: Attempt, tmp_path: Path) -> None:
    plan = _write(tmp_path, attempt.plan())
    result = _nix(RENDER_PLAN, planFile=str(plan), host=attempt.host)
    assert result.returncode != 0, f"the core rendered it:\n{result.stdout[:2000]}"
    assert "ibgp-tunnel:" in result.stderr, result.stderr


@pytest.mark.parametrize("attempt", ATTEMPTS, ids=lambda a: a.name)
def test_core_refuses_a_hand_made_spec(attempt: Attempt) -> None:
    if attempt.value is None:
        table = attempt.option[:-1]
        expression = _hand_made(table, _renamed_spec(attempt), attempt.host)
    else:
        expression = _hand_made(attempt.option, nix_value(attempt.value), attempt.host)
    _refused_by_core(_nix(expression), attempt.shown)


@pytest.mark.parametrize(("path", "value", "shown"), SPEC_ONLY, ids=lambda x: str(x))
def test_core_refuses_spec_only_values(path: list[str], value: Any, shown: str) -> None:
    _refused_by_core(_nix(_hand_made(path, nix_value(value), "pve")), shown)


@pytest.mark.parametrize("attempt", MISROUTES, ids=lambda a: a.name)
def test_core_problems_refuse_misroutes(attempt: Attempt, tmp_path: Path) -> None:
    plan = _write(tmp_path, attempt.plan())
    found = json.loads(
        _nix(
            "{ core, planFile }: (import core).planProblems "
            "(builtins.fromTOML (builtins.readFile planFile))",
            planFile=str(plan),
        ).stdout
    )
    assert any(f["path"] == attempt.toml_path for f in found), found
    base = f"c.hostFromPlan (c.readPlan {BASE_FILE}) {nix_str(attempt.host)}"
    spec = _spec_update(attempt.option, nix_value(attempt.value))
    result = _nix(f"{{ core }}: let c = import core; spec = {base}; in c.problems ({spec})")
    assert any(p["path"] == attempt.shown for p in json.loads(result.stdout)), result.stdout


# --- (c) the NixOS module ---------------------------------------------------


def _module(plan: Path, host: str, extra: str = "") -> str:
    return (
        "{ lib, ... }: { services.ibgpTunnel = { enable = true; "
        f"plan = {plan}; hostName = {nix_str(host)}; "
        f"sops.file = {REPO}/secrets/test/pve.yaml; }}; {extra} }}"
    )


def _refused_by_module(result: subprocess.CompletedProcess[str], shown: str) -> None:
    if result.returncode != 0:
        assert shown in result.stderr or shown.replace('"', "") in result.stderr, result.stderr
        return
    data = json.loads(result.stdout)
    assert any(shown in message for message in data["failedAssertions"]), data["failedAssertions"]
    # Nothing is deployed while an assertion fails.
    assert data["config"]["services"]["bird"]["enable"] is False
    assert data["config"]["networking"]["wireguard"]["interfaces"] == {}


def _option(attempt_path: list[str], value: str) -> str:
    return f"{O}.{'.'.join(nix_attr(p) for p in attempt_path)} = lib.mkForce {value};"


@needs_inputs
@pytest.mark.parametrize("attempt", ATTEMPTS + MISROUTES, ids=lambda a: a.name)
def test_module_refuses_the_option(attempt: Attempt) -> None:
    if attempt.value is None:
        # A new attribute named as the attack, holding the base's own entry.
        table, name = attempt.option[:-1], attempt.option[-1]
        source = {
            "links": 'ips = [ "10.255.255.1/30" "2001:db8:ff::2/64" ]; '
            'neighborAddress = "10.255.255.2"; '
            'peer.publicKey = "YkjfdfxGfR7nW+ekPkXDC7UqaEusGcubEGHBE2c2ixo="; '
            'peer.endpoint = "198.18.0.10:51821";',
            "dn42Peers": 'asn = 4242421080; neighbor = "172.20.42.1";',
            "prefixSets": 'ipv4 = [ "198.18.0.0/15" ];',
        }[table[0]]
        extra = f"{O}.{nix_attr(table[0])}.{nix_str(name)} = {{ {source} }};"
        host = "dmz" if table[0] == "dn42Peers" else "pve"
        shown = attempt.shown
    else:
        extra = _option(attempt.option, nix_value(attempt.value))
        host, shown = attempt.host, attempt.shown
    _refused_by_module(eval_module(_module(BASE_FILE, host, extra)), shown)


@needs_inputs
@pytest.mark.parametrize(("path", "value", "shown"), SPEC_ONLY, ids=lambda x: str(x))
def test_module_refuses_spec_only_options(path: list[str], value: Any, shown: str) -> None:
    extra = _option(path, nix_value(value))
    _refused_by_module(eval_module(_module(BASE_FILE, "pve", extra)), shown)


@needs_inputs
@pytest.mark.parametrize("attempt", ATTEMPTS + MISROUTES, ids=lambda a: a.name)
def test_module_refuses_the_plan(attempt: Attempt, tmp_path: Path) -> None:
    plan = _write(tmp_path, attempt.plan())
    result = eval_module(_module(plan, attempt.host))
    if result.returncode != 0:
        # An option type names an option the plan's value went to (a set's name
        # may be refused where a host refers to it), or the core's emitter does.
        assert f"option `{O}." in result.stderr or f"ibgp-tunnel: {O}." in result.stderr, (
            result.stderr
        )
        return
    failed = json.loads(result.stdout)["failedAssertions"]
    assert any(f": {attempt.toml_path}: " in message for message in failed), failed

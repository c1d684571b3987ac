"""Property: any plan `check` accepts renders configs that BIRD and nft accept.

Hypothesis builds varied plans (names of every allowed shape, /30 and /31 and
/64 and /127 links, prefix sets with every pattern operator, announcements,
DN42 peers over IPv4 and link-local IPv6, tuning anywhere in BIRD's ranges);
those `check` accepts are rendered for every host and fed to `bird -p` (Debian's
BIRD 2, and BIRD 3 when IBGP_TUNNEL_BIRD_DIR names a directory with `bird`) and
to `nft -c -f` inside a throwaway network namespace (`unshare -n`, so the
host's ruleset is never touched). Derandomized: CI sees the same examples."""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import shutil
import subprocess
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import pytest
from birdcheck import build_time_check
from cli_helpers import corpus
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from nixcore import CORE, needs_nix

from ibgp_tunnel.check import check_data
from ibgp_tunnel.findings import errors

BIRD_DIR = os.environ.get("IBGP_TUNNEL_BIRD_DIR", "")
BIRDS = [b for b in ("bird", str(Path(BIRD_DIR) / "bird") if BIRD_DIR else "") if b]

pytestmark = [
    needs_nix,
    pytest.mark.skipif(shutil.which("bird") is None, reason="bird is not installed (apt: bird2)"),
    pytest.mark.skipif(shutil.which("nft") is None, reason="nft is not installed (apt: nftables)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="nft -c needs root (in its own netns)"),
]

SETTINGS = settings(
    max_examples=int(os.environ.get("IBGP_TUNNEL_PROPERTY_EXAMPLES", "40")),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

# Every host's artifacts from one evaluation of the core.
RENDER_ALL = """{ coreFile, planJson }:
let
  core = import coreFile;
  plan = builtins.fromJSON (builtins.readFile planJson);
in
builtins.mapAttrs (name: _: let a = core.render (core.hostFromPlan plan name); in {
  inherit (a) birdConfig dn42Roa;
  inherit (a.nftables) ruleset forwardRules reversePathRules;
} // (if a ? autopeer then { inherit (a) autopeer; } else { })) plan.hosts
"""

names = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,12}", fullmatch=True)
interfaces = st.from_regex(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,14}", fullmatch=True)
keys = st.binary(min_size=32, max_size=32).map(lambda b: base64.b64encode(b).decode())


def _identifier(name: str) -> str:
    return name.replace("-", "_").replace(".", "_").casefold()


@st.composite
def patterns(draw: st.DrawFn, family: str) -> str:
    most = 32 if family == "ipv4" else 128
    length = draw(st.integers(8, 24) if family == "ipv4" else st.integers(16, 64))
    base = "100.64.0.0/10" if family == "ipv4" else "2a0e::/16"
    network = ipaddress.ip_network(base)
    offset = draw(st.integers(0, 2**most - 1))
    address = ipaddress.ip_address(int(network.network_address) | (offset >> network.prefixlen))
    net = ipaddress.ip_network(f"{address}/{max(length, network.prefixlen)}", strict=False)
    op = draw(st.sampled_from(["", "+", "-", "range"]))
    if op == "range":
        low = draw(st.integers(net.prefixlen, most))
        high = draw(st.integers(low, most))
        op = f"{{{low},{high}}}"
    return f"{net}{op}"


@st.composite
def tunings(draw: st.DrawFn) -> dict[str, Any]:
    tuning: dict[str, Any] = {}
    hold = draw(st.one_of(st.none(), st.sampled_from([3, 65535]), st.integers(3, 65535)))
    if hold is not None:
        tuning["hold_time"] = hold
        tuning["keepalive_time"] = draw(st.integers(1, hold))
    choices = {
        "bfd": st.booleans(),
        "graceful_restart": st.booleans(),
        "bfd_interval_ms": st.integers(1, 4294967),
        "bfd_multiplier": st.integers(1, 255),
        "graceful_restart_time": st.integers(1, 4095),
        "graceful_restart_wait": st.integers(1, 65535),
        "long_lived_stale_time": st.integers(0, 16777215),
        "connect_delay_time": st.integers(0, 65535),
        "connect_retry_time": st.integers(1, 65535),
        "import_limit": st.integers(1, 2**32 - 1),
        "import_limit_action": st.sampled_from(["warn", "block", "restart", "disable"]),
    }
    for key in draw(st.lists(st.sampled_from(sorted(choices)), unique=True, max_size=5)):
        tuning[key] = draw(choices[key])
    if draw(st.booleans()):
        low = draw(st.integers(1, 65535))
        tuning["error_wait_time"] = [low, draw(st.integers(low, 65535))]
    return tuning


@st.composite
def inbound_entries(draw: st.DrawFn) -> dict[str, Any]:
    """A destination opened to DN42: any network of either family, tcp or udp, any port."""
    if draw(st.booleans()):
        length = draw(st.integers(0, 32))
        address = ipaddress.IPv4Address(draw(st.integers(0, 2**32 - 1)))
        prefix = ipaddress.ip_network(f"{address}/{length}", strict=False)
    else:
        length = draw(st.integers(0, 128))
        address6 = ipaddress.IPv6Address(draw(st.integers(0, 2**128 - 1)))
        prefix = ipaddress.ip_network(f"{address6}/{length}", strict=False)
    return {
        "prefix": str(prefix),
        "proto": draw(st.sampled_from(["tcp", "udp"])),
        "port": draw(st.integers(1, 65535)),
    }


@st.composite
def plans(draw: st.DrawFn) -> dict[str, Any]:
    clients = draw(st.integers(1, 3))
    host_names = draw(
        st.lists(names, min_size=clients + 1, max_size=clients + 1, unique_by=_identifier)
    )
    reflector, *client_names = host_names
    set_names = draw(
        st.lists(
            names.filter(lambda n: _identifier(n) not in {"tunnel", "dn42"}),
            max_size=3,
            unique_by=_identifier,
        )
    )
    prefix_sets = {
        name: {
            "ipv4": draw(st.lists(patterns("ipv4"), max_size=3)),
            "ipv6": draw(st.lists(patterns("ipv6"), max_size=2)),
        }
        for name in set_names
    }
    known = ["dn42", *set_names]
    pool = draw(st.lists(interfaces, min_size=3 * clients + 6, unique=True))
    take = iter(pool)
    public_keys = draw(st.lists(keys, min_size=clients + 1, max_size=clients + 1, unique=True))
    ports = draw(st.lists(st.integers(1, 65535), min_size=clients, max_size=clients, unique=True))
    a = draw(st.integers(0, 255))
    hosts: dict[str, Any] = {
        reflector: {
            "role": "reflector",
            "router_id": "172.23.0.1",
            "public_key": public_keys[0],
            "endpoint": draw(st.sampled_from(["198.18.0.10", "vps.example.net", "2001:67c::1"])),
            "uplink_interfaces": [next(take)],
            "import_sets": draw(st.lists(st.sampled_from(known), unique=True)),
            "kernel_export_sets": draw(st.lists(st.sampled_from(known), unique=True)),
            "announce": {"ipv4": ["100.127.0.0/16"], "ipv6": ["2a0f::/32"]}
            if draw(st.booleans())
            else {},
            "dn42_peers": {},
        }
    }
    for index in range(draw(st.integers(0, 2))):
        peer: dict[str, Any] = {
            "asn": 4242421000 + index,
            # Only DN42 space may be exported to DN42 (the generated sets lie
            # outside it): check refuses the rest.
            "export_sets": draw(st.lists(st.just("dn42"), unique=True)),
        }
        if draw(st.booleans()):
            peer["neighbor"] = f"fe80::{index + 1:x}"
            peer["interface"] = next(take)
        else:
            peer["neighbor"] = f"172.20.{index}.1"
        hosts[reflector]["dn42_peers"][f"peer{index}"] = peer
    links: dict[str, Any] = {}
    for index, name in enumerate(client_names):
        hosts[name] = {
            "role": "client",
            "router_id": f"172.23.1.{index + 1}",
            "public_key": public_keys[index + 1],
            "lan_interfaces": [next(take)] if draw(st.booleans()) else [],
            "import_sets": draw(st.lists(st.sampled_from(known), unique=True)),
            "kernel_export_sets": draw(st.lists(st.sampled_from(known), unique=True)),
            "announce": {"ipv4": [f"192.168.{index}.0/24"]} if draw(st.booleans()) else {},
            "dn42_inbound": draw(st.lists(inbound_entries(), max_size=3)),
        }
        v4_31 = draw(st.booleans())
        v6_127 = draw(st.booleans())
        v4 = ipaddress.ip_network(f"10.{a}.{index}.0/{31 if v4_31 else 30}")
        v6 = ipaddress.ip_network(f"fd42:{a:x}:{index:x}::/{127 if v6_127 else 64}")
        ends4 = list(v4) if v4_31 else list(v4.hosts())
        ends6 = [v6.network_address, v6.network_address + 1] if v6_127 else [v6[1], v6[2]]
        links[draw(st.sampled_from([name, f"link-{index}"]))] = {
            "reflector": reflector,
            "client": name,
            "interface": next(take),
            "port": ports[index],
            "ipv4": str(v4),
            "ipv6": str(v6),
            "reflector_ipv4": str(ends4[1]),
            "client_ipv4": str(ends4[0]),
            "reflector_ipv6": str(ends6[1]),
            "client_ipv6": str(ends6[0]),
        }
    plan: dict[str, Any] = {
        "asn": draw(st.integers(4242420000, 4242420999)),
        "prefix_sets": prefix_sets,
        "hosts": hosts,
        "links": links,
    }
    tuning = draw(tunings())
    if tuning:
        plan["tuning"] = tuning
    return plan


def _render_all(plan: dict[str, Any], directory: Path) -> dict[str, Any]:
    plan_json = directory / "plan.json"
    plan_json.write_text(json.dumps(plan))
    done = subprocess.run(
        [
            "nix-instantiate",
            "--eval",
            "--strict",
            "--json",
            "--expr",
            RENDER_ALL,
            *("--argstr", "coreFile", str(CORE)),
            *("--argstr", "planJson", str(plan_json)),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"check accepted a plan the core will not render:\n{done.stderr}"
    return json.loads(done.stdout)


def _nft_document(artifacts: dict[str, Any]) -> str:
    # The forward and rpfilter rules go into the host firewall's chains; a test
    # table holds them here.
    def chain(name: str, hook: str, rules: str) -> str:
        return f"  chain {name} {{\n    type filter hook {hook} priority 0;\n{rules}  }}\n"

    return (
        artifacts["ruleset"]
        + "table inet ibgp-tunnel-test {\n"
        + chain("forward", "forward", artifacts["forwardRules"])
        + chain("rpfilter", "prerouting", artifacts["reversePathRules"])
        + "}\n"
    )


def _bird_and_nft_accept(plan: dict[str, Any]) -> None:
    assert all(shutil.which(bird) for bird in BIRDS), f"no bird in IBGP_TUNNEL_BIRD_DIR={BIRD_DIR}"
    with tempfile.TemporaryDirectory(prefix="ibgp-property-") as name:
        directory = Path(name)
        for host, artifacts in _render_all(plan, directory).items():
            for index, bird in enumerate(BIRDS):
                # As services.bird's build-time check (DN42 ROA includes stubbed).
                done = build_time_check(artifacts, directory / f"{host}-{index}", bird)
                assert done.returncode == 0, f"{bird} -p refused {host}:\n{done.stderr}"
            rules = directory / f"{host}.nft"
            rules.write_text(_nft_document(artifacts))
            done = subprocess.run(
                ["unshare", "--net", "nft", "-c", "-f", str(rules)],
                capture_output=True,
                text=True,
                check=False,
            )
            assert done.returncode == 0, f"nft -c refused {host}:\n{done.stderr}"


@SETTINGS
@given(plan=plans())
def test_accepted_plans_render_what_bird_and_nft_accept(plan: dict[str, Any]) -> None:
    assume(not errors(check_data(plan)))
    _bird_and_nft_accept(plan)


@pytest.mark.parametrize("plan", corpus("good") + corpus("warn"), ids=lambda p: p.stem)
def test_accepted_corpus_plans_render_what_bird_and_nft_accept(plan: Path) -> None:
    data = tomllib.loads(plan.read_text(encoding="utf-8"))
    assert not errors(check_data(data))
    _bird_and_nft_accept(data)

"""Self-service DN42 peering in the core (issue 24): the [hosts.<h>.autopeer]
settings and their rules, the `autopeer` entry turning requests into DN42 peers
rendered exactly as static ones (a test compares the bytes), refusals naming the
field for every injection we could think of, collisions with static peers and
the limits, the BIRD include parsed by BIRD 3 and 2 with the host's bird.conf,
the nft sets loaded by nft, and plans without autopeer rendering as before."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from birdcheck import build_time_check
from nixcore import EXAMPLE_PLAN, core_call, needs_nft_netns, needs_nix, render
from test_dn42_roa import BIRDS

from ibgp_tunnel.autopeer.errors import AutopeerRefused
from ibgp_tunnel.autopeer.render import Assigned, render_autopeers
from ibgp_tunnel.autopeer.request import PeeringRequest, parse_request

pytestmark = needs_nix

INCLUDE = "/var/lib/ibgp-tunnel/autopeer/bird/autopeer.conf"
KEY = "AAAAJQQRmmn4MndUJnm7O+Gu3RiJ/OHNhVwbb5pH4CU="
KEY2 = "BBBBJQQRmmn4MndUJnm7O+Gu3RiJ/OHNhVwbb5pH4CU="
STATIC_KEY = "GBBBJQQRmmn4MndUJnm7O+Gu3RiJ/OHNhVwbb5pH4CU="
BIRD_DIRS = {name: path for name, path in BIRDS if name in ("bird3", "bird2")}
# The package's check (python/package.nix) builds from python/ alone, without the
# lock or scripts/setup's BIRDs, and has nixpkgs' bird3 on PATH.
PACKAGE_CHECK = not (Path(__file__).resolve().parents[1] / "requirements.lock").is_file()


def bird_binary(name: str) -> str:
    """scripts/setup's BIRD `name` in a checkout (required there); in the package's
    check, BIRD 3 is the `bird` on PATH and BIRD 2 is not given."""
    if name in BIRD_DIRS:
        return str(BIRD_DIRS[name] / "bird")
    on_path = shutil.which("bird")
    if PACKAGE_CHECK and name == "bird3" and on_path:
        return on_path
    if PACKAGE_CHECK:
        pytest.skip(f"{name}: the package's check has only nixpkgs' bird3 (nativeCheckInputs)")
    raise AssertionError(f"scripts/setup installs {name} into .cache/bird")


PLAN = """\
asn = 4242420038
[prefix_sets.own]
ipv4 = ["172.23.101.0/27"]
ipv6 = ["fd42:4242:38::/48"]
[hosts.dmz]
role = "reflector"
router_id = "172.23.101.1"
public_key = "utJgjmf7Nfo3zueLm52UuanyJ0gccd4c6dOTO4sckgk="
endpoint = "198.51.100.10"
uplink_interfaces = ["eth0"]
import_sets = ["dn42"]
kernel_export_sets = ["dn42"]
[hosts.dmz.announce]
ipv4 = ["172.23.101.0/27"]
ipv6 = ["fd42:4242:38::/48"]
[hosts.dmz.autopeer]
{autopeer}
{static}
[hosts.pve]
role = "client"
router_id = "172.23.101.2"
public_key = "oRNfUbCM62OR/YHTmxZd73aRHg5gKjECAik7A/38Xms="
[links.pve]
reflector = "dmz"
client = "pve"
ipv4 = "10.255.255.0/30"
ipv6 = "fdb7:1dec:4d21:ff::/64"
reflector_ipv4 = "10.255.255.2"
client_ipv4 = "10.255.255.1"
reflector_ipv6 = "fdb7:1dec:4d21:ff::1"
client_ipv6 = "fdb7:1dec:4d21:ff::2"
"""
AUTOPEER = """\
enable = true
link_local = "fe80::38/64"
ipv4 = "172.23.101.1"
export_sets = ["own"]
"""
STATIC = f"""\
[hosts.dmz.dn42_peers.peer1]
asn = 4242421080
neighbor = "fe80::1080"
public_key = "{STATIC_KEY}"
link_local = "fe80::38/64"
ipv4 = "172.23.101.1"
peer_ipv4 = "172.20.42.1"
"""


def write_plan(tmp_path: Path, autopeer: str = AUTOPEER, static: str = STATIC) -> Path:
    path = tmp_path / "plan.toml"
    path.write_text(PLAN.format(autopeer=autopeer, static=static))
    return path


def spec_file(plan: Path, host: str = "dmz") -> Path:
    spec = core_call(f'core.hostFromPlan (core.readPlan {plan}) "{host}"')
    path = plan.with_name(f"{host}-spec.json")
    path.write_text(json.dumps(spec))
    return path


def raw(spec: Path, requests: list[Any]) -> dict[str, Any]:
    """The core's answer for requests as they are (no model in between): what
    the privileged unit gets if the web service were subverted."""
    file = spec.with_name("requests.json")
    file.write_text(json.dumps(requests, ensure_ascii=False))
    answer: dict[str, Any] = core_call(
        f"core.autopeer (builtins.fromJSON (builtins.readFile {spec})) "
        f"(builtins.fromJSON (builtins.readFile {file}))"
    )
    return answer


def request(**overrides: Any) -> PeeringRequest:
    base: dict[str, Any] = {"asn": 4242421234, "public_key": KEY, "neighbor": "fe80::1234"}
    return PeeringRequest(**{**base, **overrides})


def session_block(config: str, name: str) -> str:
    """A peer's session as bird.conf writes it: its comment line to the blank line."""
    match = re.search(rf"^# eBGP to the DN42 peer {name}[:.].*?\n}}\n\n", config, re.S | re.M)
    assert match, f"no session for {name}"
    return match.group(0)


# --- the same bytes as a static peer -------------------------------------------


def test_an_autopeer_renders_byte_for_byte_as_the_same_static_peer(tmp_path: Path) -> None:
    """The request rendered at runtime and the same peer written in the plan by
    hand give identical session text and identical WireGuard settings."""
    wanted = request(endpoint="peer.example.net:20038", peer_ipv4="172.20.1.1", mtu=1400)
    auto = render_autopeers(spec_file(write_plan(tmp_path)), [wanted])
    (name,) = auto.peers
    assert name == "ap4242421234"
    port = auto.peers[name]["listenPort"]
    assert port == 21234  # DN42's convention: 20000 + ASN mod 10000
    static = STATIC + (
        f"[hosts.dmz.dn42_peers.{name}]\n"
        f'asn = 4242421234\nneighbor = "fe80::1234"\npublic_key = "{KEY}"\n'
        f'interface = "{name}"\nlisten_port = {port}\nlink_local = "fe80::38/64"\n'
        'export_sets = ["own"]\nendpoint = "peer.example.net:20038"\nmtu = 1400\n'
        'ipv4 = "172.23.101.1"\npeer_ipv4 = "172.20.1.1"\n'
    )
    by_hand = tmp_path / "by-hand"
    by_hand.mkdir()
    artifacts = render(write_plan(by_hand, static=static), "dmz")
    assert auto.bird == session_block(artifacts["birdConfig"], name)
    assert auto.wireguard == {name: artifacts["wireguard"][name]}
    assert auto.nft_interfaces == [name] and auto.nft_ports == [port]


def test_a_plan_without_autopeer_renders_as_before() -> None:
    """No spec key, no include, no nft set (render_golden.py pins every digest)."""
    spec = core_call(f'core.hostFromPlan (core.readPlan {EXAMPLE_PLAN}) "dmz"')
    assert "autopeer" not in spec
    artifacts = render(EXAMPLE_PLAN, "dmz")
    assert "autopeer" not in artifacts["birdConfig"]
    assert "autopeer" not in artifacts["nftables"]["ruleset"]
    assert "autopeer" not in artifacts


def test_enabled_the_host_includes_the_file_and_has_the_sets(tmp_path: Path) -> None:
    artifacts = render(write_plan(tmp_path), "dmz")
    assert artifacts["birdConfig"].count(f'include "{INCLUDE}";') == 1
    ruleset = artifacts["nftables"]["ruleset"]
    assert "set autopeer_ifaces {\n    type ifname;" in ruleset
    assert "set autopeer_ports {\n    type inet_service;" in ruleset
    # Beside each rule for the static DN42 interfaces, one for the set.
    assert 'iifname { "wg-ibgp" } oifname @autopeer_ifaces masquerade' in ruleset
    assert "iifname @autopeer_ifaces tcp dport { 9324, 9586, 9100 } drop" in ruleset
    assert 'iifname @autopeer_ifaces oifname { "wg-ibgp" } drop' in ruleset
    assert artifacts["autopeer"]["paths"]["bird_include"] == INCLUDE
    assert artifacts["secretNames"]["dn42"]["privateKey"] == "wg_dn42/private_key"


def test_autopeer_alone_turns_on_dn42s_bird_logic(tmp_path: Path) -> None:
    """No static peer: the include's sessions still find the ROA and community logic."""
    config = render(write_plan(tmp_path, static=""), "dmz")["birdConfig"]
    assert "dn42_roa_import_ipv4" in config and "dn42_update_crypto" in config
    assert config.count(f'include "{INCLUDE}";') == 1


# --- BIRD and nft accept what is rendered ---------------------------------------


@pytest.mark.parametrize("bird", ["bird3", "bird2"])
@pytest.mark.parametrize("static", [STATIC, ""], ids=["with-static-peer", "autopeer-only"])
def test_bird_parses_the_include_with_the_hosts_bird_conf(
    bird: str, static: str, tmp_path: Path
) -> None:
    binary = bird_binary(bird)
    plan = write_plan(tmp_path, autopeer=AUTOPEER + "max_per_asn = 2\n", static=static)
    artifacts = render(plan, "dmz")
    # As services.bird's build-time check: the include stubbed empty.
    empty = build_time_check(artifacts, tmp_path / "stub", binary)
    assert empty.returncode == 0, empty.stderr
    # With peers: the runtime include's text in place of the stub.
    auto = render_autopeers(
        spec_file(plan),
        [
            request(endpoint="[2001:db8::1]:20038", peer_ipv4="172.20.1.1"),
            request(public_key=KEY2, neighbor="fe80::1235"),
            request(asn=4242423000, public_key=KEY2[:-2] + "c=", neighbor="fe80::3000"),
        ],
    )
    assert sorted(auto.peers) == ["ap4242421234_1", "ap4242421234_2", "ap4242423000_1"]
    include = tmp_path / "autopeer.conf"
    include.write_text(auto.bird)
    with_peers = dict(artifacts, birdConfig=artifacts["birdConfig"].replace(INCLUDE, str(include)))
    del with_peers["autopeer"]
    parsed = build_time_check(with_peers, tmp_path / "peers", binary)
    assert parsed.returncode == 0, parsed.stderr
    # The check is real: a broken include is refused.
    include.write_text(auto.bird.replace("local as", "local ass", 1))
    broken = build_time_check(with_peers, tmp_path / "broken", binary)
    assert broken.returncode != 0


@needs_nft_netns
def test_nft_loads_the_ruleset_with_the_sets_and_their_elements(tmp_path: Path) -> None:
    plan = write_plan(tmp_path)
    ruleset = render(plan, "dmz")["nftables"]["ruleset"]
    auto = render_autopeers(spec_file(plan), [request(), request(asn=4242423000, public_key=KEY2)])
    names = ", ".join(json.dumps(i) for i in auto.nft_interfaces)
    ports = ", ".join(map(str, auto.nft_ports))
    elements = (
        f"add element inet ibgp-tunnel autopeer_ifaces {{ {names} }}\n"
        f"add element inet ibgp-tunnel autopeer_ports {{ {ports} }}\n"
    )
    rules = tmp_path / "rules.nft"
    for text in (ruleset, ruleset + elements):
        rules.write_text(text)
        done = subprocess.run(
            ["unshare", "--net", "nft", "-c", "-f", str(rules)], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
    rules.write_text(ruleset.replace("type ifname;", "type ifnam;"))
    refused = subprocess.run(
        ["unshare", "--net", "nft", "-c", "-f", str(rules)], capture_output=True, text=True
    )
    assert refused.returncode != 0


# --- injection: refused, naming the field ---------------------------------------

BAD_VALUES: list[tuple[str, Any]] = [
    # (field, value) the model lets through (right type) and the core refuses.
    *[
        ("public_key", KEY[:-1] + suffix)
        for suffix in ("\n", '"', ";", "}", "$(reboot)", "/../", "é", "==")
    ],
    ("public_key", KEY[:-2] + "B="),  # 44 characters, but 33 bytes' worth of bits
    ("public_key", KEY[:-1]),
    ("public_key", KEY + KEY),
    ("public_key", "A" * 400),
    ("neighbor", "fd00::1"),
    ("neighbor", "fe80::1%eth0"),
    ("neighbor", "fe80::1\nprotocol static x {}"),
    ("neighbor", 'fe80::1"; }'),
    ("neighbor", "172.20.1.1"),
    ("neighbor", "fec0::1"),
    ("neighbor", "fe80::1/64"),
    ("neighbor", "\uff46\uff4580::1"),  # fullwidth "fe"
    ("endpoint", "peer.example.net/path:20038"),
    ("endpoint", "peer example.net:20038"),
    ("endpoint", "peer.example.net:99999"),
    ("endpoint", "$(id).example.net:1"),
    ("endpoint", "../etc/passwd:1"),
    ("endpoint", "peer.example.net:1; reboot"),
    ("endpoint", "[fe80::1]:1\n"),
    ("endpoint", "a" * 300 + ":1"),
    ("peer_ipv4", "172.20.1.1/32"),
    ("peer_ipv4", "256.1.1.1"),
    ("peer_ipv4", "172.20.1.1 ; }"),
    ("peer_ipv4", "\uff1172.20.1.1"),  # a fullwidth digit
    ("mtu", 100),
    ("mtu", 100000),
    ("mtu", -1),
    ("asn", 0),
    ("asn", -5),
    ("asn", 2**32),
    ("asn", 2**40),
]


def test_the_core_refuses_every_injection_naming_the_field(tmp_path: Path) -> None:
    """One request per bad value; each is refused with its own field named, and
    nothing of a refused request is rendered."""
    spec = spec_file(write_plan(tmp_path))
    requests = [request(**{field: value}) for field, value in BAD_VALUES]
    done = render_autopeers(spec, requests, refuse=False)
    assert done.peers == {} and done.bird == "" and done.wireguard == {}
    assert done.nft_interfaces == [] and done.nft_ports == []
    by_index: dict[int, set[str]] = {}
    for problem in done.problems:
        by_index.setdefault(problem.index, set()).add(problem.field)
    for index, (field, value) in enumerate(BAD_VALUES):
        assert by_index.get(index) == {field}, (field, value, by_index.get(index))


@pytest.mark.parametrize(("field", "value"), BAD_VALUES[:12])
def test_one_bad_value_raises_autopeer_refused(field: str, value: Any, tmp_path: Path) -> None:
    with pytest.raises(AutopeerRefused) as refused:
        render_autopeers(spec_file(write_plan(tmp_path)), [request(**{field: value})])
    assert refused.value.field == field
    assert str(refused.value).startswith(f"{field}: ")
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"asn": "4242421234", "public_key": KEY, "neighbor": "fe80::1"}, "asn"),
        ({"asn": True, "public_key": KEY, "neighbor": "fe80::1"}, "asn"),
        ({"asn": 10**30, "public_key": KEY, "neighbor": "fe80::1"}, "asn"),
        ({"asn": 1.5, "public_key": KEY, "neighbor": "fe80::1"}, "asn"),
        ({"asn": 4242421234, "public_key": KEY + "\x00", "neighbor": "fe80::1"}, "public_key"),
        ({"asn": 4242421234, "public_key": KEY, "neighbor": "fe80::1\x00"}, "neighbor"),
        (
            {"asn": 4242421234, "public_key": KEY, "neighbor": "fe80::1", "endpoint": "a\x00:1"},
            "endpoint",
        ),
        (
            {"asn": 4242421234, "public_key": KEY, "neighbor": "fe80::1", "peer_ipv4": "\x00"},
            "peer_ipv4",
        ),
        ({"asn": 4242421234, "public_key": KEY, "neighbor": "fe80::1", "mtu": "1420"}, "mtu"),
        ({"asn": 4242421234, "public_key": ["x"], "neighbor": "fe80::1"}, "public_key"),
        ({"asn": 4242421234, "public_key": KEY, "neighbor": "x" * 100000}, "neighbor"),
        ({"asn": 4242421234, "public_key": KEY}, "neighbor"),
        (
            {"asn": 4242421234, "public_key": KEY, "neighbor": "fe80::1", "interface": "eth0"},
            "request",
        ),
        ({"asn": 4242421234, "public_key": KEY, "neighbor": "fe80::1", 'x"\n}': 1}, "request"),
        (["asn"], "request"),
    ],
)
def test_the_model_refuses_what_cannot_travel(data: Any, field: str) -> None:
    with pytest.raises(AutopeerRefused) as refused:
        parse_request(data)
    assert refused.value.field == field
    assert "\x00" not in str(refused.value) and "\n" not in str(refused.value)


def test_the_core_refuses_raw_data_of_the_wrong_shape(tmp_path: Path) -> None:
    """Past the model (a subverted web service): the core still refuses."""
    spec = spec_file(write_plan(tmp_path))
    answer = raw(
        spec,
        [
            {"asn": "4242421234", "public_key": KEY, "neighbor": "fe80::1"},
            {"asn": 4242421234, "public_key": KEY, "neighbor": "fe80::1", "interface": "eth0"},
            {"asn": 4242421234, "public_key": KEY},
            "asn",
            {"asn": 4242421234, "public_key": KEY, "neighbor": "fe80::1", "mtu": 1.5e3},
        ],
    )
    paths = sorted(p["path"] for p in answer["problems"])
    assert paths == ["peers.0.asn", "peers.1", "peers.2.neighbor", "peers.3", "peers.4.mtu"]
    assert answer["peers"] == {} and answer["bird"] == ""


# --- static peers win; limits; ports -----------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"asn": 4242421080}, "asn"),  # the static peer's AS
        ({"asn": 4242420038}, "asn"),  # our own
        ({"public_key": STATIC_KEY}, "public_key"),
        ({"peer_ipv4": "172.20.42.1"}, "peer_ipv4"),  # the static peer's
        ({"peer_ipv4": "172.23.101.1"}, "peer_ipv4"),  # ours
        ({"neighbor": "fe80::38"}, "neighbor"),  # our own link-local
        ({"neighbor": "FE80:0:0::38"}, "neighbor"),  # the same, written otherwise
    ],
)
def test_static_peers_and_our_own_addresses_win(
    overrides: dict[str, Any], field: str, tmp_path: Path
) -> None:
    with pytest.raises(AutopeerRefused) as refused:
        render_autopeers(spec_file(write_plan(tmp_path)), [request(**overrides)])
    assert refused.value.field == field


def test_no_ipv4_offered_no_peer_ipv4(tmp_path: Path) -> None:
    plan = write_plan(tmp_path, autopeer='enable = true\nlink_local = "fe80::38/64"\n')
    with pytest.raises(AutopeerRefused) as refused:
        render_autopeers(spec_file(plan), [request(peer_ipv4="172.20.1.1")])
    assert refused.value.field == "peer_ipv4"


def test_a_name_taken_by_a_static_peer_is_refused(tmp_path: Path) -> None:
    static = STATIC + (
        f'[hosts.dmz.dn42_peers.ap4242421234]\nasn = 4242429999\nneighbor = "fe80::9999"\n'
        f'public_key = "{KEY2}"\nlink_local = "fe80::38/64"\n'
    )
    with pytest.raises(AutopeerRefused) as refused:
        render_autopeers(spec_file(write_plan(tmp_path, static=static)), [request()])
    assert refused.value.field == "asn" and "taken" in str(refused.value)


def test_limits_per_asn_and_in_total(tmp_path: Path) -> None:
    plan = write_plan(tmp_path, autopeer=AUTOPEER + "max_peers = 2\n")
    done = render_autopeers(
        spec_file(plan),
        [
            request(),
            request(public_key=KEY2, neighbor="fe80::1235"),  # a second for the AS
            request(asn=4242423000, public_key=KEY2),
            request(asn=4242423001, public_key=KEY2[:-2] + "c="),  # beyond max_peers
        ],
        refuse=False,
    )
    assert sorted(done.peers) == ["ap4242421234", "ap4242423000"]
    assert [(p.index, p.field) for p in done.problems] == [(1, "asn"), (3, "request")]
    assert "max_per_asn" in done.problems[0].message
    assert "most" in done.problems[1].message


def test_the_same_key_or_address_twice_is_refused_the_second_time(tmp_path: Path) -> None:
    done = render_autopeers(
        spec_file(write_plan(tmp_path, autopeer=AUTOPEER + "max_per_asn = 3\n")),
        [
            request(peer_ipv4="172.20.1.1"),
            request(asn=4242423000),
            request(asn=4242423001, public_key=KEY2, peer_ipv4="172.20.1.1"),
        ],
        refuse=False,
    )
    assert sorted(done.peers) == ["ap4242421234_1"]
    assert [(p.index, p.field) for p in done.problems] == [(1, "public_key"), (2, "peer_ipv4")]


def test_ports_take_the_convention_else_the_first_free(tmp_path: Path) -> None:
    # The static peer listens on 21080 (its own ASN's convention); an
    # autopeer whose convention is the same port gets the first free one.
    plan = write_plan(tmp_path, autopeer=AUTOPEER + "port_min = 21079\nport_max = 21090\n")
    done = render_autopeers(
        spec_file(plan),
        [request(asn=4242411080), request(asn=4242421079, public_key=KEY2)],
    )
    # 21080 is the static peer's: the first free port of the range.
    assert done.peers["ap4242411080"]["listenPort"] == 21079
    # Its convention, 21079, is taken now: the next free one (21080 is still the static's).
    assert done.peers["ap4242421079"]["listenPort"] == 21081
    full = write_plan(tmp_path, autopeer=AUTOPEER + "port_min = 21080\nport_max = 21080\n")
    with pytest.raises(AutopeerRefused, match="no UDP port is free"):
        render_autopeers(spec_file(full), [request()])


def test_refused_when_autopeer_is_off(tmp_path: Path) -> None:
    plan = write_plan(tmp_path, autopeer='enable = false\nlink_local = "fe80::38/64"\n')
    with pytest.raises(AutopeerRefused, match="not enabled"):
        render_autopeers(spec_file(plan), [request()])


def test_the_digest_is_canonical() -> None:
    one = parse_request({"neighbor": "fe80::1", "asn": 4242421234, "public_key": KEY})
    two = parse_request(
        {"public_key": KEY, "asn": 4242421234, "neighbor": "fe80::1", "endpoint": None}
    )
    assert one.digest() == two.digest()
    assert re.fullmatch("[0-9a-f]{64}", one.digest())
    assert one.digest() != request(neighbor="fe80::2").digest()


# --- the settings' rules -------------------------------------------------------------


def findings(plan: Path) -> list[tuple[str, str]]:
    found = core_call(f"core.planProblems (core.readPlan {plan})")
    return [(f["path"], f["message"]) for f in found if f["severity"] == "error"]


@pytest.mark.parametrize(
    ("autopeer", "path", "words"),
    [
        ("enable = true\n", "hosts.dmz.autopeer.link_local", "required"),
        (AUTOPEER + "port_min = 30000\n", "hosts.dmz.autopeer.port_max", "below port_min"),
        (AUTOPEER + "port_max = 20010\n", "hosts.dmz.autopeer.port_max", "max_peers"),
        (AUTOPEER + "max_peers = 0\n", "hosts.dmz.autopeer.max_peers", "out of range"),
        (AUTOPEER + "max_peers = 1001\n", "hosts.dmz.autopeer.max_peers", "out of range"),
        (AUTOPEER + "max_per_asn = 40\n", "hosts.dmz.autopeer.max_per_asn", "out of range"),
        (
            AUTOPEER + "max_peers = 2\nmax_per_asn = 3\n",
            "hosts.dmz.autopeer.max_per_asn",
            "above max_peers",
        ),
        (AUTOPEER + "rate_limit = 0\n", "hosts.dmz.autopeer.rate_limit", "out of range"),
        (AUTOPEER + "challenge_ttl = 5\n", "hosts.dmz.autopeer.challenge_ttl", "out of range"),
        (
            AUTOPEER + 'registry_url = "http://git.dn42.dev/x.git"\n',
            "hosts.dmz.autopeer.registry_url",
            "https://",
        ),
        (
            AUTOPEER + 'registry_url = "https://h/x;reboot"\n',
            "hosts.dmz.autopeer.registry_url",
            "https://",
        ),
        (
            AUTOPEER + 'registry_url = "file:///srv/../etc"\n',
            "hosts.dmz.autopeer.registry_url",
            "'..'",
        ),
        (
            AUTOPEER + 'registry_refresh = "1 h"\n',
            "hosts.dmz.autopeer.registry_refresh",
            "time span",
        ),
        (
            AUTOPEER + 'listen_address = "localhost"\n',
            "hosts.dmz.autopeer.listen_address",
            "address",
        ),
        (
            'enable = true\nlink_local = "fd00::1/64"\n',
            "hosts.dmz.autopeer.link_local",
            "link-local",
        ),
        (AUTOPEER.replace('["own"]', '["nope"]'), "hosts.dmz.autopeer.export_sets", "not defined"),
    ],
)
def test_plan_rules(autopeer: str, path: str, words: str, tmp_path: Path) -> None:
    found = findings(write_plan(tmp_path, autopeer=autopeer))
    assert any(p == path and words in m for p, m in found), found


def test_only_on_a_reflector(tmp_path: Path) -> None:
    plan = (
        write_plan(tmp_path).read_text()
        + '[hosts.pve.autopeer]\nenable = true\nlink_local = "fe80::38/64"\n'
    )
    path = tmp_path / "client.toml"
    path.write_text(plan)
    assert any(p == "hosts.pve.autopeer" and "reflector" in m for p, m in findings(path))


def test_the_default_settings_are_clean_and_off(tmp_path: Path) -> None:
    assert findings(write_plan(tmp_path)) == []
    assert findings(write_plan(tmp_path, autopeer="")) == []
    spec = core_call(f'core.hostFromPlan (core.readPlan {write_plan(tmp_path, autopeer="")}) "dmz"')
    assert spec["autopeer"]["enable"] is False and spec["autopeer"]["listenPort"] == 8042
    assert "autopeer" not in render(write_plan(tmp_path, autopeer=""), "dmz")


def test_host_rules_name_the_options(tmp_path: Path) -> None:
    """The module's assertions (core.problems on the spec) say the same with option paths."""
    spec = spec_file(write_plan(tmp_path, autopeer="enable = true\nport_min = 30000\n"))
    found = core_call(f"core.problems (builtins.fromJSON (builtins.readFile {spec}))")
    paths = {f["path"] for f in found}
    assert "services.ibgpTunnel.autopeer.linkLocal" in paths
    assert "services.ibgpTunnel.autopeer.portMax" in paths


def test_a_static_peer_named_as_a_later_index_is_never_replaced(tmp_path: Path) -> None:
    static = STATIC + (
        f'[hosts.dmz.dn42_peers.ap4242421234_2]\nasn = 4242429999\nneighbor = "fe80::9999"\n'
        f'public_key = "{KEY2}"\nlink_local = "fe80::38/64"\n'
    )
    plan = write_plan(tmp_path, autopeer=AUTOPEER + "max_per_asn = 3\n", static=static)
    done = render_autopeers(
        spec_file(plan),
        [request(), request(public_key=KEY2[:-2] + "c=", neighbor="fe80::1235")],
        refuse=False,
    )
    assert sorted(done.peers) == ["ap4242421234_1"]
    assert [(p.index, p.field) for p in done.problems] == [(1, "asn")]
    assert "taken" in done.problems[0].message


def test_problems_come_in_the_requests_order(tmp_path: Path) -> None:
    spec = spec_file(write_plan(tmp_path))
    done = render_autopeers(spec, [request(mtu=1)] * 12, refuse=False)
    assert [p.index for p in done.problems] == list(range(12))


# --- names and ports do not churn (issue 24: applied peerings keep theirs) ----------

KEY3 = "CCCCJQQRmmn4MndUJnm7O+Gu3RiJ/OHNhVwbb5pH4CU="


def _facts(done: Any) -> dict[str, tuple[str, int]]:
    """peer name -> (interface, port) of what was rendered."""
    return {n: (p["interface"], p["listenPort"]) for n, p in done.peers.items()}


def test_removing_the_first_of_three_moves_neither_other(tmp_path: Path) -> None:
    """Two peerings of one AS and one of another whose convention is the same
    port: the first holds the port and index 1. Rendered again without it, the
    other two keep their interface and port when handed back what they were
    given; rendered without that (as before), both would move."""
    spec = spec_file(write_plan(tmp_path, autopeer=AUTOPEER + "max_per_asn = 3\n"))
    first = request()
    second = request(public_key=KEY2, neighbor="fe80::1235")
    third = request(asn=4242411234, public_key=KEY3)
    done = render_autopeers(spec, [first, second, third])
    before = _facts(done)
    assert before == {
        "ap4242421234_1": ("ap4242421234_1", 21234),
        "ap4242421234_2": ("ap4242421234_2", 20000),
        "ap4242411234_1": ("ap4242411234_1", 20001),
    }
    # What the apply unit's records hand back for the two that stay, in their order.
    given = [Assigned(n, before[n][1]) for n in ("ap4242421234_2", "ap4242411234_1")]
    after = render_autopeers(spec, [second, third], assigned=given)
    assert _facts(after) == {n: before[n] for n in ("ap4242421234_2", "ap4242411234_1")}
    # Not by chance: without what they were given, both move.
    naive = _facts(render_autopeers(spec, [second, third]))
    assert naive["ap4242421234_1"] == ("ap4242421234_1", 21234)
    assert "ap4242421234_2" not in naive
    # A new one takes what is free around them: index 1 again, the first free port.
    fourth = request(public_key=KEY2[:-2] + "c=", neighbor="fe80::1236")
    grown = _facts(render_autopeers(spec, [second, third, fourth], assigned=given))
    assert grown["ap4242421234_1"] == ("ap4242421234_1", 21234)
    assert {n: grown[n] for n in given_names(given)} == {n: before[n] for n in given_names(given)}


def given_names(given: list[Assigned]) -> list[str]:
    return [a.name for a in given]


def test_what_was_given_is_kept_only_while_it_fits(tmp_path: Path) -> None:
    """A name of another AS or beyond max_per_asn, a port outside the range or a
    static peer's: given anew (static peers win); the new ones never take a kept one."""
    spec = spec_file(write_plan(tmp_path, autopeer=AUTOPEER + "max_per_asn = 2\n"))
    done = render_autopeers(
        spec,
        [request(), request(asn=4242423000, public_key=KEY2)],
        assigned=[Assigned("ap4242421234_3", 21080), Assigned("ap4242421234_1", 29999)],
    )
    assert _facts(done) == {
        "ap4242421234_1": ("ap4242421234_1", 21234),  # _3 is beyond max_per_asn; 21080 static
        "ap4242423000_1": ("ap4242423000_1", 29999),  # another AS's name: its own given
    }
    # Two applied ones cannot both keep the same port: the first (in order) does.
    clash = render_autopeers(
        spec,
        [request(), request(asn=4242423000, public_key=KEY2)],
        assigned=[Assigned("ap4242421234_2", 25000), Assigned("ap4242423000_2", 25000)],
    )
    assert _facts(clash) == {
        "ap4242421234_2": ("ap4242421234_2", 25000),
        "ap4242423000_2": ("ap4242423000_2", 23000),
    }


@pytest.mark.parametrize(
    ("given", "path"),
    [
        ({"name": 'ap1"; }'}, "peers.0.name"),
        ({"name": "eth0"}, "peers.0.name"),
        ({"name": "ap1/../x"}, "peers.0.name"),
        ({"name": 4242421234}, "peers.0.name"),
        ({"listen_port": "21234"}, "peers.0.listen_port"),
        ({"listen_port": 0}, "peers.0.listen_port"),
        ({"listen_port": 70000}, "peers.0.listen_port"),
        ({"listen_port": 21234.0}, "peers.0.listen_port"),
    ],
)
def test_what_was_given_is_checked_like_every_field(
    given: dict[str, Any], path: str, tmp_path: Path
) -> None:
    """The records are the apply unit's, but a file can be planted: the core
    checks them as it checks a stranger's keys."""
    spec = spec_file(write_plan(tmp_path))
    answer = raw(spec, [{"asn": 4242421234, "public_key": KEY, "neighbor": "fe80::1"} | given])
    assert [p["path"] for p in answer["problems"]] == [path]
    assert answer["peers"] == {}


def test_a_stranger_cannot_send_a_name_or_port() -> None:
    for key, value in (("name", "ap4242421234"), ("listen_port", 20000)):
        with pytest.raises(AutopeerRefused):
            parse_request({"asn": 4242421234, "public_key": KEY, "neighbor": "fe80::1", key: value})

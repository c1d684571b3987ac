"""`ibgp-tunnel render` and the functions the lab imports: host_spec, render_host."""

from __future__ import annotations

import json
import shutil
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomlkit
from cli_helpers import CORPUS, EXAMPLE_PLAN, run

from ibgp_tunnel import paths
from ibgp_tunnel.core import nix_error_message, plan_problems
from ibgp_tunnel.formats import as_wg
from ibgp_tunnel.render import host_spec, render_host

HAS_NIX = shutil.which("nix-instantiate") is not None
GOOD = CORPUS / "good" / "base.toml"


@pytest.fixture
def core_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A stand-in Nix core in IBGP_TUNNEL_NIX_LIB; the test writes its default.nix."""
    core = tmp_path / "core"
    core.mkdir()
    (core / paths.DEFAULTS_FILE).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(paths.nix_lib_dir() / paths.DEFAULTS_FILE, core / paths.DEFAULTS_FILE)
    monkeypatch.setenv(paths.ENV_VAR, str(core))
    paths.nix_lib_dir.cache_clear()
    yield core
    paths.nix_lib_dir.cache_clear()


ARTIFACTS = {
    "birdConfig": "router id 172.23.101.2;\n",
    "nftables": {"ruleset": "table inet ibgp-tunnel {\n}\n"},
    "wireguard": {
        "wg-ibgp": {
            "ips": ["10.255.255.1/30", "fdb7:1dec:4d21:ff::2/64"],
            "listenPort": 51821,
            "privateKeyFile": "/run/secrets/wg_ibgp/private_key",
            "allowedIPsAsRoutes": False,
            "peers": [
                {
                    "name": "dmz",
                    "publicKey": None,
                    "presharedKeyFile": "/run/secrets/wg_ibgp/psk/pve",
                    "endpoint": "203.0.113.10:51821",
                    "allowedIPs": ["0.0.0.0/1", "128.0.0.0/1", "::/1", "8000::/1"],
                    "persistentKeepalive": 25,
                }
            ],
        }
    },
}


def test_wg_text_names_key_files_and_never_holds_keys() -> None:
    text = as_wg(ARTIFACTS)
    lines = text.splitlines()
    assert "[Interface]" in lines and "[Peer]" in lines
    assert "ListenPort = 51821" in lines
    assert "Endpoint = 203.0.113.10:51821" in lines
    assert "AllowedIPs = 0.0.0.0/1, 128.0.0.0/1, ::/1, 8000::/1" in lines
    assert "PersistentKeepalive = 25" in lines
    assert not any(line.startswith(("PrivateKey", "PresharedKey", "PublicKey")) for line in lines)
    assert "/run/secrets/wg_ibgp/private_key" in text
    assert "ibgp-tunnel keys" in text  # the missing public key says how to get one


def test_nix_error_message_is_clean() -> None:
    stderr = (
        '\x1b[31;1merror:\x1b[0m ibgp-tunnel: host "x" is not in the plan\n'
        "(use '--show-trace' to show detailed location information)\n"
    )
    assert nix_error_message(stderr) == 'ibgp-tunnel: host "x" is not in the plan'
    assert nix_error_message("") == "nix-instantiate failed without saying why"


@pytest.mark.skipif(not HAS_NIX, reason="nix-instantiate is not installed")
def test_a_throw_in_the_core_is_a_clean_exit_1(core_dir: Path) -> None:
    (core_dir / "default.nix").write_text(
        '{ hostFromPlan = plan: name: throw "ibgp-tunnel: no ${name} here"; render = s: s;\n'
        "  planProblems = plan: [ ]; }\n"
    )
    result = run("render", GOOD, "pve")
    assert result.exit_code == 1
    assert "ibgp-tunnel: no pve here" in result.stderr
    assert "show-trace" not in result.stderr


@pytest.mark.skipif(not HAS_NIX, reason="nix-instantiate is not installed")
def test_arguments_reach_the_core_unquoted(core_dir: Path, tmp_path: Path) -> None:
    # A path with spaces and quotes must arrive intact (--argstr, not spliced source).
    odd = tmp_path / 'we"ird ${dir}'
    odd.mkdir()
    plan = odd / "plan.toml"
    shutil.copy(GOOD, plan)
    (core_dir / "default.nix").write_text(
        "{ hostFromPlan = plan: name: { inherit name; asn = plan.asn; };\n"
        '  render = spec: { birdConfig = "host ${spec.name}"; };\n'
        "  planProblems = plan: [ ]; }\n"
    )
    assert host_spec(plan, "pve") == {"name": "pve", "asn": 4242420038}
    result = run("render", plan, "pve", "--format", "bird")
    assert result.exit_code == 0, result.output
    assert result.stdout == "host pve\n"


def test_missing_core_file_exits_2(core_dir: Path) -> None:
    result = run("render", GOOD, "pve")
    assert result.exit_code == 2
    assert "default.nix" in result.stderr


def test_missing_nix_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    result = run("render", GOOD, "pve")
    assert result.exit_code == 2
    assert "nix-instantiate" in result.stderr


def test_unknown_host_and_unusable_plan_exit_2(tmp_path: Path) -> None:
    unknown = run("render", GOOD, "nas")
    assert unknown.exit_code == 2
    assert "dmz, pve" in unknown.stderr
    assert run("render", tmp_path / "nope.toml", "pve").exit_code == 2


def test_invalid_plan_is_not_rendered() -> None:
    result = run("render", CORPUS / "bad" / "many-problems.toml", "pve")
    assert result.exit_code == 1
    assert "error: links.pve.client_ipv4" in result.stdout
    assert "does not pass" in result.stderr


REAL_CORE = (paths.nix_lib_dir() / paths.CORE_FILE).is_file()
needs_core = pytest.mark.skipif(
    not (HAS_NIX and REAL_CORE and EXAMPLE_PLAN.is_file()),
    reason="needs nix-instantiate, modules/lib/default.nix and hosts/plan.toml",
)


@needs_core
@pytest.mark.parametrize("host", ["dmz", "pve"])
def test_example_hosts_render_in_every_format(host: str) -> None:
    artifacts = render_host(EXAMPLE_PLAN, host)
    assert {"birdConfig", "wireguard", "nftables"} <= set(artifacts)
    as_json = run("render", EXAMPLE_PLAN, host)
    assert as_json.exit_code == 0
    assert json.loads(as_json.stdout) == artifacts
    bird = run("render", EXAMPLE_PLAN, host, "-f", "bird").stdout
    assert bird == artifacts["birdConfig"] and "router id" in bird
    nft = run("render", EXAMPLE_PLAN, host, "-f", "nft").stdout
    assert nft.startswith("table inet ")
    wg = run("render", EXAMPLE_PLAN, host, "-f", "wg").stdout
    assert "[Interface]" in wg and "[Peer]" in wg
    spec = json.loads(run("render", EXAMPLE_PLAN, host, "-f", "spec").stdout)
    assert spec == host_spec(EXAMPLE_PLAN, host)
    assert spec["role"] in {"reflector", "client"}


@pytest.mark.skipif(not (HAS_NIX and REAL_CORE), reason="needs nix-instantiate and the Nix core")
@pytest.mark.parametrize(
    "plan",
    sorted((CORPUS / "good").glob("*.toml")) + sorted((CORPUS / "warn").glob("*.toml")),
    ids=lambda p: f"{p.parent.name}/{p.stem}",
)
def test_plans_that_pass_check_render_on_the_core(plan: Path) -> None:
    # `check` passing must mean the core accepts the plan for every host.
    for host in tomllib.loads(plan.read_text(encoding="utf-8"))["hosts"]:
        artifacts = render_host(plan, host)
        assert "router id" in artifacts["birdConfig"]


def _plan_with_link(tmp_path: Path, **link: object) -> Path:
    plan = tomllib.loads(EXAMPLE_PLAN.read_text(encoding="utf-8"))
    plan["links"]["pve"].update(link)
    path = tmp_path / "plan.toml"
    path.write_text(tomlkit.dumps(plan), encoding="utf-8")
    return path


@needs_core
def test_a_link_mtu_reaches_both_ends_wireguard_and_nothing_else(tmp_path: Path) -> None:
    plan = _plan_with_link(tmp_path, mtu=1380)
    assert run("check", plan).exit_code == 0
    for host in ("dmz", "pve"):
        artifacts = render_host(plan, host)
        assert artifacts["wireguard"]["wg-ibgp"]["mtu"] == 1380
        # Without the key WireGuard keeps its own default: nothing is rendered.
        assert "mtu" not in render_host(EXAMPLE_PLAN, host)["wireguard"]["wg-ibgp"]
        plain = dict(artifacts["wireguard"]["wg-ibgp"])
        del plain["mtu"]
        assert plain == render_host(EXAMPLE_PLAN, host)["wireguard"]["wg-ibgp"]
        assert (
            "# mtu (ip link set wg-ibgp mtu ...): 1380"
            in run("render", plan, host, "-f", "wg").stdout
        )


@needs_core
@pytest.mark.parametrize(("mtu", "words"), [(1279, "1280"), (9001, "9000"), ("1380", "integer")])
def test_a_link_mtu_out_of_range_is_named_with_the_range(
    tmp_path: Path, mtu: object, words: str
) -> None:
    result = run("check", _plan_with_link(tmp_path, mtu=mtu))
    assert result.exit_code == 1
    assert "links.pve.mtu" in result.stdout and words in result.stdout, result.stdout


@needs_core
@pytest.mark.parametrize("mtu", [1279, 9001])
def test_the_core_itself_refuses_a_link_mtu_out_of_range(mtu: int) -> None:
    # Whatever path the plan came by (the module reads it without Python).
    plan = tomllib.loads(EXAMPLE_PLAN.read_text(encoding="utf-8"))
    plan["links"]["pve"]["mtu"] = mtu
    problems = plan_problems(plan)
    assert any(p["path"] == "links.pve.mtu" for p in problems), problems

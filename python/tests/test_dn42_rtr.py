"""RPKI over RTR (dn42_roa.source = "rtr"): what the core renders (one `protocol
rpki` per cache in the plan's order, BIRD's timers), that BIRD 3 and BIRD 2 parse
it, the plan rules on the new fields, the JSON refresh script against hostile
downloads (the ROA files' rules: https, size cap, grammar, last good file kept),
and the NixOS units (module evaluation with the real nixpkgs lib)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import tomllib
from pathlib import Path

import pytest
import tomlkit
from cli_helpers import run
from moduleeval import needs_inputs
from nixcore import EXAMPLE_PLAN, EXAMPLE_ROA_FILES_PLAN, needs_nix, render
from test_dn42_roa import BIRDS, RESOURCES
from test_nixos_module import example

pytestmark = needs_nix

SCRIPT = RESOURCES / "dn42-rtr-update.sh"
GOOD = {
    "metadata": {"counts": 2},
    "roas": [
        {"prefix": "172.20.0.0/24", "maxLength": 28, "asn": "AS4242420000"},
        {"prefix": "fd42:d42:d42::/48", "maxLength": 64, "asn": 4242420001},
    ],
}


def plan_with(tmp_path: Path, roa: str) -> Path:
    """The example with `roa` (TOML) as the whole of dmz's [hosts.dmz.dn42_roa]."""
    data = tomlkit.parse(EXAMPLE_PLAN.read_text())
    data["hosts"]["dmz"]["dn42_roa"] = tomlkit.parse(roa)  # type: ignore[index]
    path = tmp_path / "plan.toml"
    path.write_text(tomlkit.dumps(data))
    return path


def test_the_roa_files_twin_is_the_example_but_its_source() -> None:
    """plans/example-roa-files.toml, what the tests about ROA files render, is the
    example with dmz's ROAs from ROA files (no `source`, the default): nothing else."""
    example = tomllib.loads(EXAMPLE_PLAN.read_text())
    assert example["hosts"]["dmz"]["dn42_roa"].pop("source") == "rtr"
    assert tomllib.loads(EXAMPLE_ROA_FILES_PLAN.read_text()) == example, (
        "python/tests/plans/example-roa-files.toml differs from hosts/plan.toml beyond "
        "dn42_roa.source: change both together"
    )


def rpki_blocks(config: str) -> list[str]:
    return [b.split("\n}\n", 1)[0] for b in config.split("protocol rpki ")[1:]]


# --- render ----------------------------------------------------------------------


def test_default_is_the_files_and_rtr_renders_no_file_include(tmp_path: Path) -> None:
    # Without `source`, ROA files: the example's twin with no source (and the example
    # with its 15min as the whole table) render them.
    for plan in (EXAMPLE_ROA_FILES_PLAN, plan_with(tmp_path, 'interval = "15min"\n')):
        files = render(plan, "dmz")
        assert files["dn42Rtr"] is None and files["dn42Roa"] is not None
        assert "protocol rpki" not in files["birdConfig"]
    # The example itself runs RPKI over RTR.
    rtr = render(EXAMPLE_PLAN, "dmz")
    assert rtr["dn42Roa"] is None
    assert (
        'include "' in files["birdConfig"]
        and 'include "' not in rtr["birdConfig"]
        and "dn42_roa4_file" not in rtr["birdConfig"]
    )
    # BIRD re-runs the import filters itself when RTR changes the tables (rpki
    # reload): BIRD 2 does it only for a BGP channel with an import table.
    assert "import table on;" not in files["birdConfig"]
    assert rtr["birdConfig"].count("import table on;") == 2  # the peer's ipv4 and ipv6
    # The same ROA checks in the import filters: only the tables' source changed.
    assert rtr["birdConfig"].count("dn42_roa_import_ipv4();") == 1
    (block,) = rpki_blocks(rtr["birdConfig"])
    assert block.startswith("dn42_rpki_1 {")
    assert "remote 127.0.0.1 port 8282;" in block  # the local stayrtr
    assert "table dn42_roa4;" in block and "table dn42_roa6;" in block
    assert "refresh keep 900;" in block  # the plan's 15min
    assert "retry keep 30;" in block
    assert "expire keep 172800;" in block  # 48 h: losing the caches withdraws nothing
    assert rtr["dn42Rtr"] == {
        "arguments": [
            "https://dn42.burble.com/roa/dn42_roa_46.json",
            "/var/lib/ibgp-tunnel/roa/dn42_roa.json",
        ],
        "bind": "127.0.0.1:8282",
        "interval": "15min",
        "jsonFile": "/var/lib/ibgp-tunnel/roa/dn42_roa.json",
        "maxBytes": 8388608,
        "refreshSeconds": 900,
        "script": SCRIPT.read_text(),
    }


def test_caches_in_the_plans_order(tmp_path: Path) -> None:
    plan = plan_with(
        tmp_path,
        'source = "rtr"\ninterval = "2d"\nrtr_port = 8323\n'
        'rtr_caches = [ { address = "fd42:4242:2601::53", port = 323 },'
        ' { address = "127.0.0.1", port = 8323 } ]\n',
    )
    rendered = render(plan, "dmz")
    first, second = rpki_blocks(rendered["birdConfig"])
    assert first.startswith("dn42_rpki_1 {") and "remote fd42:4242:2601::53 port 323;" in first
    assert second.startswith("dn42_rpki_2 {") and "remote 127.0.0.1 port 8323;" in second
    # The first preferred; BIRD's refresh at most its largest (1 day).
    assert "preference 200;" in first and "preference 199;" in second
    assert "refresh keep 86400;" in first
    assert rendered["dn42Rtr"]["bind"] == "127.0.0.1:8323"
    assert rendered["dn42Rtr"]["refreshSeconds"] == 172800


@pytest.mark.parametrize("bird", BIRDS, ids=[name for name, _ in BIRDS])
def test_bird_parses_the_rendered_rpki_config(bird: tuple[str, Path], tmp_path: Path) -> None:
    plan = plan_with(
        tmp_path,
        'source = "rtr"\nrtr_caches = [ { address = "127.0.0.1", port = 8282 },'
        ' { address = "fd42:4242:2601::53", port = 323 } ]\n',
    )
    conf = tmp_path / "bird.conf"
    conf.write_text(render(plan, "dmz")["birdConfig"])
    parsed = subprocess.run(
        [str(bird[1] / "bird"), "-p", "-c", str(conf)], capture_output=True, text=True
    )
    assert parsed.returncode == 0, parsed.stderr


# --- plan rules ----------------------------------------------------------------------


def findings(tmp_path: Path, roa: str) -> list[dict[str, str]]:
    result = run("check", "--json", plan_with(tmp_path, roa))
    return [f for f in json.loads(result.stdout)["findings"] if "dn42_roa" in f["path"]]


@pytest.mark.parametrize(
    ("roa", "path", "words"),
    [
        ('source = "rpki"\n', "hosts.dmz.dn42_roa.source", "files"),
        ('source = "rtr"\nrtr_port = 323\n', "hosts.dmz.dn42_roa.rtr_port", "1024"),
        ('source = "rtr"\nrtr_port = 9324\n', "hosts.dmz.dn42_roa.rtr_port", "exporter"),
        (
            'source = "rtr"\nrtr_caches = [ { address = "rtr.example.net", port = 323 } ]\n',
            "hosts.dmz.dn42_roa.rtr_caches[0].address",
            "IPv4 or IPv6 address",
        ),
        (
            'source = "rtr"\nrtr_caches = [ { address = "::1", port = 8282 },'
            ' { address = "::1", port = 8282 } ]\n',
            "hosts.dmz.dn42_roa.rtr_caches[1]",
            "repeats an earlier cache",
        ),
        (
            'source = "rtr"\nrtr_caches = ['
            + ", ".join(f'{{ address = "::1", port = {8000 + i} }}' for i in range(9))
            + " ]\n",
            "hosts.dmz.dn42_roa.rtr_caches",
            "at most 8",
        ),
        (
            'source = "rtr"\njson_url = "http://dn42.example/roa.json"\n',
            "hosts.dmz.dn42_roa.json_url",
            "plain http://",
        ),
    ],
)
def test_plan_rules(tmp_path: Path, roa: str, path: str, words: str) -> None:
    found = findings(tmp_path, roa)
    assert any(
        f["path"] == path and f["severity"] == "error" and words in f["message"] for f in found
    ), found


def test_rtr_fields_with_the_files_are_a_warning(tmp_path: Path) -> None:
    (finding,) = findings(tmp_path, "rtr_port = 8323\n")
    assert finding["severity"] == "warning" and finding["path"] == "hosts.dmz.dn42_roa.source"


def test_plain_http_json_with_the_opt_in_is_accepted(tmp_path: Path) -> None:
    roa = 'source = "rtr"\nallow_insecure_urls = true\njson_url = "http://dn42.example/r.json"\n'
    assert findings(tmp_path, roa) == []
    assert render(plan_with(tmp_path, roa), "dmz")["dn42Rtr"]["arguments"][0] == "--allow-http"


# --- the JSON refresh against what a download may be -----------------------------------


def refresh(tmp_path: Path, served: bytes | str, *flags: str, **env: str):  # type: ignore[no-untyped-def]
    source = tmp_path / "served.json"
    source.write_bytes(served.encode() if isinstance(served, str) else served)
    target = tmp_path / "state" / "dn42_roa.json"
    return target, subprocess.run(
        ["bash", str(SCRIPT), *flags, f"file://{source}", str(target)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )


def test_a_good_download_is_installed_once(tmp_path: Path) -> None:
    target, first = refresh(tmp_path, json.dumps(GOOD))
    assert first.returncode == 0 and "updated (2 entries)" in first.stdout
    assert json.loads(target.read_text()) == GOOD
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    _, again = refresh(tmp_path, json.dumps(GOOD))
    assert again.returncode == 0 and "current" in again.stdout
    assert [p.name for p in target.parent.iterdir()] == ["dn42_roa.json"]  # no leftovers


def _entry(**change: object) -> str:
    entry = {"prefix": "172.20.0.0/24", "maxLength": 28, "asn": "AS4242420000", **change}
    return json.dumps({"roas": [entry]})


@pytest.mark.parametrize(
    ("served", "why"),
    [
        ('{"roas": []}', "holds no ROA entry"),
        ("[1, 2]", 'is not an object with a "roas" list'),
        ("not json", "parse error"),
        (b'{"roas": [\x00]}', "DN42's ROA JSON"),
        (_entry(prefix="172.20.0.0/24\nprotocol static x"), "is not an IPv4 or IPv6 prefix"),
        (_entry(prefix="172.20.0.256/24"), "is not an IPv4 or IPv6 prefix"),
        (_entry(prefix="fd42:::1/48"), "is not an IPv4 or IPv6 prefix"),
        (_entry(prefix="1:2:3:4:5:6:7:8:9/48"), "is not an IPv4 or IPv6 prefix"),
        (_entry(maxLength=20), "maxLength is not between the prefix length 24 and 32"),
        (_entry(maxLength=33), "maxLength is not between"),
        (_entry(maxLength=28.5), "maxLength is not between"),
        (_entry(asn="AS99999999999"), "asn is not a 32-bit AS number"),
        (_entry(asn="AS1\n"), "asn is not a 32-bit AS number"),
        (_entry(asn=-1), "asn is not a 32-bit AS number"),
    ],
)
def test_a_bad_download_keeps_the_last_good_file(
    tmp_path: Path, served: str | bytes, why: str
) -> None:
    target, first = refresh(tmp_path, json.dumps(GOOD))
    assert first.returncode == 0
    good = target.read_bytes()
    _, refused = refresh(tmp_path, served)
    assert refused.returncode == 1, refused.stdout
    assert why in refused.stderr and "keeping" in refused.stderr, refused.stderr
    assert target.read_bytes() == good
    assert [p.name for p in target.parent.iterdir()] == ["dn42_roa.json"]


def test_size_cap_and_plain_http(tmp_path: Path) -> None:
    big = json.dumps({"roas": [GOOD["roas"][0]] * 400})
    target, capped = refresh(tmp_path, big, ROA_MAX_BYTES="4096")
    assert capped.returncode == 1 and "larger than 4096 bytes" in capped.stderr
    assert not target.exists()
    _, fits = refresh(tmp_path, big, ROA_MAX_BYTES=str(len(big)))
    assert fits.returncode == 0
    http = subprocess.run(
        ["bash", str(SCRIPT), "http://127.0.0.1:9/roa.json", str(target)],
        capture_output=True,
        text=True,
    )
    assert http.returncode == 1 and "only https:// and file://" in http.stderr
    tried = subprocess.run(
        ["bash", str(SCRIPT), "--allow-http", "http://127.0.0.1:9/roa.json", str(target)],
        capture_output=True,
        text=True,
    )
    assert (
        tried.returncode == 1 and "downloading http://127.0.0.1:9/roa.json failed" in tried.stderr
    )
    assert json.loads(target.read_text())["roas"][0] == GOOD["roas"][0]


def test_a_planted_symlink_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "dn42_roa.json").symlink_to(victim)
    target, result = refresh(tmp_path, json.dumps(GOOD))
    assert result.returncode == 0
    assert victim.read_text() == "keep me\n"
    assert not target.is_symlink() and json.loads(target.read_text()) == GOOD


# --- the NixOS units ---------------------------------------------------------------------


@needs_inputs
def test_module_runs_the_refresh_and_the_local_cache() -> None:
    result = example("dmz")  # the example's dmz: source = "rtr" from the plan
    assert result["failedAssertions"] == []
    config = result["config"]
    services, timers = config["systemd"]["services"], config["systemd"]["timers"]
    assert "ibgp-tunnel-dn42-roa" not in services  # no ROA files with RTR
    refresh = services["ibgp-tunnel-dn42-rtr"]
    argv = shlex.split(refresh["serviceConfig"]["ExecStart"])
    assert argv[1:] == [
        "https://dn42.burble.com/roa/dn42_roa_46.json",
        "/var/lib/ibgp-tunnel/roa/dn42_roa.json",
    ]
    assert refresh["serviceConfig"]["User"] == "bird"
    assert refresh["serviceConfig"]["ReadWritePaths"] == ["/var/lib/ibgp-tunnel/roa"]
    assert refresh["environment"]["ROA_MAX_BYTES"] == "8388608"
    assert timers["ibgp-tunnel-dn42-rtr"]["timerConfig"]["OnUnitActiveSec"] == "15min"
    cache = services["ibgp-tunnel-stayrtr"]
    words = shlex.split(cache["serviceConfig"]["ExecStart"])
    assert words[0].endswith("/bin/stayrtr")
    assert words[1:] == [
        "-bind",
        "127.0.0.1:8282",
        "-cache",
        "/var/lib/ibgp-tunnel/roa/dn42_roa.json",
        "-refresh",
        "900",
        "-checktime=false",
        "-metrics.addr=",
        "-loglevel",
        "warn",
    ]
    assert cache["serviceConfig"]["DynamicUser"] is True
    assert cache["serviceConfig"]["CapabilityBoundingSet"] == ""
    assert cache["wantedBy"] == ["multi-user.target"]
    # On first boot it starts with a file: after one refresh.
    assert "ibgp-tunnel-dn42-rtr.service" in cache["wants"]
    assert "ibgp-tunnel-dn42-rtr.service" in cache["after"]
    assert "protocol rpki dn42_rpki_1" in config["services"]["bird"]["config"]
    assert "d /var/lib/ibgp-tunnel/roa 0755 bird bird -" in config["systemd"]["tmpfiles"]["rules"]


@needs_inputs
def test_module_refuses_a_repeated_cache() -> None:
    cache = '{ address = "127.0.0.1"; port = 8282; }'
    result = example(
        "dmz",
        f"services.ibgpTunnel.dn42.roa.rtrCaches = lib.mkForce [ {cache} {cache} ];",
    )
    assert any("repeats a cache" in m for m in result["failedAssertions"]), result
    assert result["config"]["systemd"]["services"].get("ibgp-tunnel-stayrtr") is None


@needs_inputs
def test_module_refuses_the_exporters_port_for_the_cache() -> None:
    result = example(
        "dmz",
        "services.ibgpTunnel.dn42.roa.rtrPort = lib.mkForce 9324;",
    )
    assert any("exporter's port" in m for m in result["failedAssertions"]), result

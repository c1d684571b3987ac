"""RPKI over RTR in the lab (dn42_roa.source = "rtr"): the example plan (its
reflector on RTR, with a 5 s refresh interval here) and its DN42 peer, with the
reflector's ROA tables filled by its own `protocol rpki` from a local
stayrtr, which serves DN42's ROA JSON as the module's refresh installs it. The
JSON holds the real DN42 registry beside the checkout (../shared/data/dn42-registry:
every route/route6 object, read at test time, never copied into the repository), and
the peer announces a share of the registry's prefixes with their real origins, plus
some with a wrong origin: filtering is shown on DN42's real table.

Shown: the caches' table is the JSON's, entry for entry; valid routes imported,
invalid ones refused; a route whose ROA goes away is withdrawn within the refresh
interval, without a reload by anyone (stayrtr notifies BIRD, BIRD re-evaluates); the
cache stopped withdraws nothing (BIRD keeps the last table, expire 48 h).

BIRD 3 unless IBGP_TUNNEL_BIRD_DIR names another (run again with
.cache/bird/bird2/bin for BIRD 2). A lab of its own (directory and namespace
prefix), beside the other lab tests'."""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import tomlkit
from labtools import (
    EXAMPLE_PLAN,
    REPO,
    TEST_LAB_DIR,
    TEST_PREFIX,
    Lab,
    birdc,
    lab_up,
    poll,
    run_doctor,
    skip_reason,
)

from ibgp_tunnel.lab import daemons, dn42lab, location
from ibgp_tunnel.lab.registry import Roa
from ibgp_tunnel.lab.up import reconfigure_bird

REGISTRY = REPO.parent / "shared" / "data" / "dn42-registry" / "data"

pytestmark = [
    pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason())),
    pytest.mark.skipif(
        not REGISTRY.is_dir(),
        reason="../shared/data/dn42-registry is absent (DN42's registry beside the checkout)",
    ),
]

LAB_DIR = TEST_LAB_DIR + "-rtr"
PREFIX = TEST_PREFIX[:-1] + "r-"
REFLECTOR, PEER = "dmz", "dn42"
# The refresh interval of this plan: the JSON's, stayrtr's and BIRD's RTR refresh.
INTERVAL = 5
# One in SHARE of the registry's prefixes in DN42's ranges is announced by the peer.
SHARE = 8
# Announced with this origin, which no ROA names: RPKI invalid (or unknown).
OTHER_AS = 4242429999
WRONG = 12
DEADLINE = 90


def rtr_plan(directory: Path) -> Path:
    """The example plan (its reflector on RTR) with a short refresh interval."""
    data = tomlkit.parse(EXAMPLE_PLAN.read_text())
    roa = data["hosts"]["dmz"]["dn42_roa"]  # type: ignore[index]
    assert roa["source"] == "rtr", "the example's dmz no longer uses RPKI over RTR"  # type: ignore[index]
    roa["interval"] = f"{INTERVAL}s"  # type: ignore[index]
    path = directory / "plan.toml"
    path.write_text(tomlkit.dumps(data))
    return path


def in_dn42_ranges(prefix: str) -> bool:
    """What the example's import sets take from DN42 (DN42_NET's main ranges)."""
    net = ipaddress.ip_network(prefix)
    if net.version == 4:
        return net.subnet_of(ipaddress.ip_network("172.20.0.0/14")) and 21 <= net.prefixlen <= 29
    return net.subnet_of(ipaddress.ip_network("fd00::/8")) and 44 <= net.prefixlen <= 64


def announcements(plan: dict, roas: list[Roa]) -> tuple[dict[str, int], dict[str, int]]:
    """A share of the registry's prefixes with their origins (valid), and others with
    OTHER_AS (invalid): never one the plan or the peer announces itself."""
    own = [
        ipaddress.ip_network(p)
        for host in plan["hosts"].values()
        for family in ("ipv4", "ipv6")
        for p in host.get("announce", {}).get(family, [])
    ]
    own += [ipaddress.ip_network("172.23.101.0/24"), dn42lab.EXTRA_IPV4, dn42lab.EXTRA_IPV6]
    first: dict[str, int] = {}
    for roa in roas:
        net = ipaddress.ip_network(roa.prefix)
        # AS0 ROAs (RFC 6483: the prefix must not be routed) are in the table but
        # make no route valid: a path ending in AS 0 is no real announcement.
        if (
            roa.prefix not in first
            and roa.asn != 0
            and in_dn42_ranges(roa.prefix)
            and not any(net.version == o.version and net.overlaps(o) for o in own)
        ):
            first[roa.prefix] = roa.asn
    prefixes = sorted(first)
    valid = {p: first[p] for p in prefixes[::SHARE]}
    invalid = {p: OTHER_AS for p in prefixes[1::SHARE][:WRONG]}
    return valid, invalid


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, dn42lab.Dn42Lab]]:
    plan_path = rtr_plan(tmp_path_factory.mktemp("rtr-plan"))
    with lab_up(plan_path, LAB_DIR, PREFIX, **{location.DN42_REGISTRY_ENV: str(REGISTRY)}) as env:
        yield env, dn42lab.Dn42Lab(Path(LAB_DIR), env.topo, registry=REGISTRY)


def all_roas(dn42: dn42lab.Dn42Lab, lab: Lab) -> list[Roa]:
    peers = [p for p in lab.topo.dn42_peers if p.reflector == REFLECTOR]
    return dn42lab.peer_roas(peers) + dn42.registry_roas("ipv4") + dn42.registry_roas("ipv6")


def table_count(lab: Lab, table: str) -> int:
    out = birdc(lab.st, REFLECTOR, "show", "route", "table", table, "count")
    match = re.search(r"^(\d+) of \d+ routes", out, re.M)
    return int(match[1]) if match else -1


def rpki_state(lab: Lab) -> str:
    out = birdc(lab.st, REFLECTOR, "show", "protocols", "dn42_rpki_1")
    line = next((x for x in out.splitlines() if x.startswith("dn42_rpki_1")), "")
    return line


def imported(lab: Lab) -> set[str]:
    """The prefixes the reflector took from the DN42 peer."""
    out = birdc(lab.st, REFLECTOR, "show", "route", "protocol", "dn42_peer1")
    return set(re.findall(r"^([0-9a-f.:]+/\d+)\s", out, re.M))


def expected_entries(roas: list[Roa], family: str) -> int:
    # A ROA table holds one entry per (prefix, max length, origin).
    return len({(r.prefix, r.max_length, r.asn) for r in roas if r.family == family})


def test_the_cache_fills_the_roa_tables_with_the_registry(
    lab: tuple[Lab, dn42lab.Dn42Lab],
) -> None:
    env, dn42 = lab
    rendered = env.artifacts[REFLECTOR]
    assert rendered["dn42Roa"] is None and rendered["dn42Rtr"]["refreshSeconds"] == INTERVAL
    assert "protocol rpki dn42_rpki_1" in rendered["birdConfig"]
    assert "dn42_roa4_file" not in rendered["birdConfig"]  # no ROA file include
    roas = all_roas(dn42, env)
    assert len(roas) > 4000  # the registry's, not a handful of invented ones
    families = (("dn42_roa4", "ipv4"), ("dn42_roa6", "ipv6"))
    expected = {t: expected_entries(roas, f) for t, f in families}
    poll(lambda: "Established" in rpki_state(env), DEADLINE, "the RTR session to stayrtr")
    poll(
        lambda: all(table_count(env, t) == n for t, n in expected.items()),
        DEADLINE,
        f"the ROA tables holding the JSON's entries {expected}",
    )


def test_valid_registry_routes_imported_invalid_refused(
    lab: tuple[Lab, dn42lab.Dn42Lab],
) -> None:
    env, dn42 = lab
    (peer,) = env.topo.dn42_peers
    valid, invalid = announcements(env.plan, all_roas(dn42, env))
    assert len(valid) > 100 and len(invalid) == WRONG
    config = dn42lab.with_origins(dn42lab.peer_bird_config(peer), {**valid, **invalid})
    reconfigure_bird(Path(LAB_DIR), PEER, config)
    got = poll(
        lambda: (lambda s: s if set(valid) <= s else None)(imported(env)),
        DEADLINE,
        f"the {len(valid)} valid registry prefixes imported from the peer",
    )
    assert not set(invalid) & got, sorted(set(invalid) & got)


def _victim(env: Lab, dn42: dn42lab.Dn42Lab) -> tuple[str, list[Roa]]:
    """A valid announced prefix, and the JSON's ROAs without every one that makes it valid."""
    valid, _ = announcements(env.plan, all_roas(dn42, env))
    prefix, origin = sorted(valid.items())[len(valid) // 2]
    net = ipaddress.ip_network(prefix)

    def covers(r: Roa) -> bool:
        roa_net = ipaddress.ip_network(r.prefix)
        return (
            r.asn == origin
            and roa_net.version == net.version
            and net.subnet_of(roa_net)  # type: ignore[arg-type]
            and r.max_length >= net.prefixlen
        )

    return prefix, [r for r in all_roas(dn42, env) if not covers(r)]


def test_a_route_losing_its_roa_is_withdrawn_within_the_refresh_interval(
    lab: tuple[Lab, dn42lab.Dn42Lab],
) -> None:
    env, dn42 = lab
    prefix, without = _victim(env, dn42)
    poll(lambda: prefix in imported(env), DEADLINE, f"{prefix} imported first")
    dn42.serve_json(REFLECTOR, without)
    refreshed = dn42.refresh_rtr(REFLECTOR)  # what the timer runs
    assert refreshed.returncode == 0, refreshed.stderr
    assert "updated" in refreshed.stdout
    start = time.monotonic()
    poll(lambda: prefix not in imported(env), DEADLINE, f"{prefix} withdrawn after its ROA went")
    print(f"{prefix} withdrawn {time.monotonic() - start:.1f} s after the JSON changed")
    # Back: the ROA returns, so does the route (no session reset by anyone).
    dn42.serve_json(REFLECTOR, all_roas(dn42, env))
    assert dn42.refresh_rtr(REFLECTOR).returncode == 0
    poll(lambda: prefix in imported(env), DEADLINE, f"{prefix} back with its ROA")


def test_a_bad_download_keeps_the_last_good_json(lab: tuple[Lab, dn42lab.Dn42Lab]) -> None:
    env, dn42 = lab
    before = dn42.installed_json(REFLECTOR).read_bytes()
    dn42.served_json(REFLECTOR).write_text('{"roas": []}\n')
    refused = dn42.refresh_rtr(REFLECTOR)
    assert refused.returncode == 1 and "holds no ROA entry" in refused.stderr
    assert dn42.installed_json(REFLECTOR).read_bytes() == before
    dn42.serve_json(REFLECTOR, all_roas(dn42, env))


def rpki_line(host: str) -> dict[str, str]:
    """doctor's dn42.rpki line for the host (as a user runs doctor on the lab)."""
    result = run_doctor(host, LAB_DIR, PREFIX)
    report = json.loads(result.stdout)
    (line,) = [c for c in report["checks"] if c["id"] == "dn42.rpki"]
    return line


# The BIRD exporter nixpkgs runs (Debian's prometheus-bird-exporter), with the
# module's flags, on the reflector's socket: what IbgpTunnelRtrCachesDown reads.
EXPORTER = shutil.which("prometheus-bird-exporter") or shutil.which("bird_exporter")


@contextmanager
def bird_exporter(lab: Lab) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert EXPORTER is not None, "prometheus-bird-exporter is not installed (apt)"
    argv = [EXPORTER, "-web.listen-address", f"127.0.0.1:{port}"]
    argv += ["-bird.socket", lab.st.nodes[REFLECTOR]["bird_socket"]]
    argv += ["-bird.v2=true", "-format.new=true"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield f"http://127.0.0.1:{port}/metrics"
    finally:
        process.terminate()
        process.wait(timeout=10)


def rpki_up(url: str) -> dict[str, tuple[float, str]]:
    """bird_protocol_up of each `protocol rpki`: (value, state label)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return {}
    found = {}
    for line in text.splitlines():
        if line.startswith("bird_protocol_up{") and 'proto="RPKI"' in line:
            name = re.search(r'name="([^"]*)"', line)
            state = re.search(r'state="([^"]*)"', line)
            value = float(line.rsplit(" ", 1)[1])
            found[name[1] if name else ""] = (value, state[1] if state else "")
    return found


def rpki_down(url: str) -> dict[str, tuple[float, str]] | None:
    found = rpki_up(url)
    return found if found.get("dn42_rpki_1", (1.0, ""))[0] == 0.0 else None


def test_losing_the_cache_withdraws_nothing(lab: tuple[Lab, dn42lab.Dn42Lab]) -> None:
    env, dn42 = lab
    valid, _ = announcements(env.plan, all_roas(dn42, env))
    poll(lambda: set(valid) <= imported(env), DEADLINE, "every valid prefix imported")
    assert rpki_line(REFLECTOR)["status"] == "ok"
    tables = {t: table_count(env, t) for t in ("dn42_roa4", "dn42_roa6")}
    (cache,) = [d for d in env.st.daemons if d.name == f"{REFLECTOR}/stayrtr"]
    with bird_exporter(env) as url:
        # The series the RTR alert reads: up while the cache answers...
        poll(lambda: rpki_up(url) == {"dn42_rpki_1": (1.0, "Established")}, 30, "RPKI up")
        daemons.stop(cache)
        poll(lambda: "Established" not in rpki_state(env), DEADLINE, "BIRD noticing the cache gone")
        # ...and 0 once it is gone (max over the caches == 0: the alert's condition).
        down_now = poll(lambda: rpki_down(url), 30, "RPKI down")
        assert down_now["dn42_rpki_1"][1] != "Established", down_now
    # Past several refresh intervals (when a cache's data would be refreshed): the
    # table and the routes stay, BIRD expires them only after 48 h.
    time.sleep(3 * INTERVAL)
    assert {t: table_count(env, t) for t in tables} == tables
    assert set(valid) <= imported(env)
    # doctor says so: a warning naming the 48 h, not a failure.
    line = rpki_line(REFLECTOR)
    assert line["status"] == "warn" and "every RTR cache is gone" in line["summary"], line

"""Doctor's drift checks (checks/drift.py) on recorded lab outputs with the drift reads
added: BIRD's config file (content, loaded or not), WireGuard's peers, and our
nftables table as the real nft prints it (loaded in a throwaway network namespace,
`unshare --net`, so the host's ruleset is never touched).

The lab tests (test_doctor_lab.py) break the same things on a running lab."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from unrecorded import not_ok

from ibgp_tunnel.doctor import saved
from ibgp_tunnel.doctor.checks import run_checks
from ibgp_tunnel.doctor.checks.drift import _endpoint_differs
from ibgp_tunnel.doctor.collect import Output, Snapshot, read_bird_config
from ibgp_tunnel.doctor.expect import Expectations
from ibgp_tunnel.doctor.live import parse_snapshot
from ibgp_tunnel.doctor.parse_drift import (
    config_protocols,
    file_age,
    nft_drift,
    reconfigured_ago,
    text_drift,
)
from ibgp_tunnel.doctor.readfile import MAX_CONFIG_BYTES, read_config
from ibgp_tunnel.doctor.report import as_text
from ibgp_tunnel.doctor.result import Check, Status
from ibgp_tunnel.doctor.run import plan_expectations

TESTS = Path(__file__).resolve().parent
DATA = TESTS / "data" / "doctor"
EXAMPLE_PLAN = TESTS.parents[1] / "hosts" / "plan.toml"
THREE_CLIENTS_PLAN = TESTS / "plans" / "three-clients.toml"
BIRDS = ("bird-3.1.8", "bird-2.0.12")
TABLE = ("inet", "ibgp-tunnel")

# As test_render_property.py: root for a network namespace of its own.
needs_nft = pytest.mark.skipif(
    shutil.which("nft") is None or os.geteuid() != 0,
    reason="needs nft (apt: nftables) and root (for a network namespace of its own)",
)


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # As the recordings were made (test_doctor_lab.py's plan, import limit 20).
    path = tmp_path_factory.mktemp("plan") / "plan.toml"
    path.write_text(EXAMPLE_PLAN.read_text() + "\n[tuning]\nimport_limit = 20\n")
    return path


@pytest.fixture(scope="module")
def expect(plan: Path) -> dict[str, Expectations]:
    return {host: plan_expectations(plan, host) for host in ("dmz", "pve")}


def _nft_prints(ruleset: str, *then: str) -> str:
    """`nft list table inet ibgp-tunnel` after loading `ruleset` (and running each of
    `then`, nft commands) in a network namespace of its own."""
    script = 'printf "%s" "$0" | nft -f - && for c in "$@"; do nft "$c" || exit 1; done'
    script += " && nft list table inet ibgp-tunnel"
    done = subprocess.run(
        ["unshare", "--net", "sh", "-c", script, ruleset, *then],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _with_drift_reads(
    bird: str,
    host: str,
    exp: Expectations,
    *,
    config: str | None = None,
    config_age: float = 600.0,
    table: str | None = None,
) -> Snapshot:
    """A recorded healthy snapshot plus what doctor now reads for drift: BIRD's config
    file (`config`, the rendered one by default) changed `config_age` seconds before the
    read, and the table as nft printed it."""
    snap = saved.load(DATA / bird / "healthy" / host)
    text = exp.bird_config if config is None else config
    snap.outputs["bird_config"] = Output(("read", "/etc/bird/bird.conf"), 0, text, "")
    read_at = snap.time
    snap.outputs["bird_config_mtime"] = Output(
        ("stat", "/etc/bird/bird.conf"), 0, f"{read_at - config_age} {read_at}\n", ""
    )
    if table is not None:
        snap.outputs["nft_table"] = Output(("nft", "list", "table", *TABLE), 0, table, "")
    return snap


def _checks(exp: Expectations, snap: Snapshot) -> list[Check]:
    return run_checks(exp, parse_snapshot(snap))


def _first_failure(checks: list[Check]) -> Check | None:
    return next((c for c in checks if c.status is Status.FAIL), None)


# --- nftables: the rendered table as nft prints it --------------------------------------


@needs_nft
@pytest.mark.parametrize("host", ["dmz", "pve"])
def test_rendered_table_as_nft_prints_it_is_no_drift_and_a_hand_rule_is(
    expect: dict[str, Expectations], host: str
) -> None:
    exp = expect[host]
    printed = _nft_prints(exp.nft_ruleset)
    assert nft_drift(exp.nft_ruleset, printed) is None, printed
    added = _nft_prints(
        exp.nft_ruleset, "add rule inet ibgp-tunnel postrouting ip daddr 198.51.100.7 accept"
    )
    drift = nft_drift(exp.nft_ruleset, added)
    assert drift is not None and drift.changes == (
        "chain postrouting: + ip daddr 198.51.100.7 accept",
    )
    flushed = _nft_prints(exp.nft_ruleset, "flush chain inet ibgp-tunnel postrouting")
    drift = nft_drift(exp.nft_ruleset, flushed)
    assert drift is not None and all(c.startswith("chain postrouting: - ") for c in drift.changes)
    assert any("masquerade" in c for c in drift.changes)


@needs_nft
def test_three_clients_tables_as_nft_prints_them_are_no_drift() -> None:
    """Sets of several interfaces and prefixes: nft sorts and prints them its way."""
    for host in ("vps", "home", "office", "laptop"):
        rendered = plan_expectations(THREE_CLIENTS_PLAN, host).nft_ruleset
        printed = _nft_prints(rendered)
        assert nft_drift(rendered, printed) is None, (host, printed)


@needs_nft
@pytest.mark.parametrize("bird", BIRDS)
def test_nft_table_drift_is_named_last_with_its_fix(
    expect: dict[str, Expectations], bird: str
) -> None:
    exp = expect["pve"]
    healthy = _with_drift_reads(bird, "pve", exp, table=_nft_prints(exp.nft_ruleset))
    checks = _checks(exp, healthy)
    assert not_ok(checks) == []
    assert any(c.id == "drift.nftables inet ibgp-tunnel" for c in checks)
    added = _nft_prints(exp.nft_ruleset, "add rule inet ibgp-tunnel input tcp dport 22 drop")
    first = _first_failure(_checks(exp, _with_drift_reads(bird, "pve", exp, table=added)))
    assert first is not None and first.id == "drift.nftables inet ibgp-tunnel"
    assert "chain input: + tcp dport 22 drop" in first.evidence
    assert "systemctl reload nftables" in first.fix
    missing = _with_drift_reads(bird, "pve", exp)
    missing.outputs["nft_table"] = Output(
        ("nft", "list", "table", *TABLE), 1, "", "Error: No such file or directory"
    )
    first = _first_failure(_checks(exp, missing))
    assert first is not None and first.id == "drift.nftables inet ibgp-tunnel"
    assert "not loaded" in first.summary


# --- BIRD's config file ---------------------------------------------------------------------


@pytest.mark.parametrize("bird", BIRDS)
@pytest.mark.parametrize("host", ["dmz", "pve"])
def test_rendered_config_that_bird_loaded_is_ok(
    expect: dict[str, Expectations], bird: str, host: str
) -> None:
    checks = _checks(expect[host], _with_drift_reads(bird, host, expect[host]))
    assert [c.line() for c in checks if c.status is Status.FAIL] == []
    ids = {c.id: c.status for c in checks}
    assert ids["drift.bird.config /etc/bird/bird.conf"] is Status.OK
    assert ids["drift.bird.loaded"] is Status.OK


@pytest.mark.parametrize("bird", BIRDS)
def test_config_written_after_birds_last_reconfiguration_is_not_loaded(
    expect: dict[str, Expectations], bird: str
) -> None:
    exp = expect["pve"]
    # BIRD last read its config ~4 s before the recording; the file is 1 s old.
    checks = _checks(exp, _with_drift_reads(bird, "pve", exp, config_age=1.0))
    first = _first_failure(checks)
    assert first is not None and first.id == "drift.bird.loaded", first
    assert "systemctl reload bird" in first.fix and "birdc configure" in first.fix
    assert "BIRD last read its config" in first.evidence


@pytest.mark.parametrize("bird", BIRDS)
def test_hand_edit_not_loaded_says_put_the_file_back_not_configure(
    expect: dict[str, Expectations], bird: str
) -> None:
    exp = expect["pve"]
    edited = (
        exp.bird_config
        + "\nprotocol static hand_made {\n  ipv4;\n  route 192.0.2.0/24 blackhole;\n}\n"
    )
    checks = _checks(exp, _with_drift_reads(bird, "pve", exp, config=edited))
    first = _first_failure(checks)
    assert first is not None and first.id == "drift.bird.config /etc/bird/bird.conf", first
    assert "has not loaded it yet" in first.summary
    assert "+ protocol static hand_made {" in first.evidence
    assert "hand_made, which BIRD does not run" in first.evidence
    assert "nixos-rebuild switch" in first.fix and "do not `birdc configure`" in first.fix


@pytest.mark.parametrize("bird", BIRDS)
def test_hand_edit_bird_runs_says_switch_then_reload(
    expect: dict[str, Expectations], bird: str
) -> None:
    exp = expect["dmz"]
    edited = exp.bird_config.replace("scan time 1;", "scan time 5;", 1)
    assert edited != exp.bird_config
    checks = _checks(exp, _with_drift_reads(bird, "dmz", exp, config=edited))
    first = _first_failure(checks)
    assert first is not None and first.id.startswith("drift.bird.config"), first
    assert first.summary.startswith("BIRD runs a config file that differs")
    assert first.evidence == "- scan time 1; | + scan time 5;"
    assert "nixos-rebuild switch" in first.fix and "systemctl reload bird" in first.fix
    # Everything else is as healthy as recorded: drift is the only failing area.
    assert {c.id.split()[0] for c in checks if c.status is Status.FAIL} == {"drift.bird.config"}


def test_merged_config_holds_our_part_among_the_hosts_own(
    expect: dict[str, Expectations],
) -> None:
    exp = replace(expect["pve"], bird_standalone=False)
    # The host's own text (its protocols would need a BIRD that runs them).
    own_before = "define HOME_NET = [ 192.168.0.0/16+ ];\n"
    own_after = "function home_export() {\n  return net ~ HOME_NET;\n}\n"
    merged = own_before + "\n" + exp.bird_config + "\n" + own_after
    checks = _checks(exp, _with_drift_reads("bird-3.1.8", "pve", exp, config=merged))
    config = next(c for c in checks if c.id.startswith("drift.bird.config"))
    assert config.status is Status.OK and "the plan's part" in config.summary
    broken = merged.replace("hold time 9;", "hold time 90;")
    checks = _checks(exp, _with_drift_reads("bird-3.1.8", "pve", exp, config=broken))
    config = next(c for c in checks if c.id.startswith("drift.bird.config"))
    assert config.status is Status.FAIL and config.evidence == "- hold time 9; | + hold time 90;"


def test_unreadable_config_warns_and_recordings_without_it_skip(
    expect: dict[str, Expectations],
) -> None:
    exp = expect["pve"]
    snap = _with_drift_reads("bird-3.1.8", "pve", exp)
    snap.outputs["bird_config"] = Output(("read", "/x"), 1, "", "/x: Permission denied")
    del snap.outputs["bird_config_mtime"]
    line = next(c for c in _checks(exp, snap) if c.id.startswith("drift.bird"))
    assert line.status is Status.WARN and "--bird-config" in line.fix
    old = saved.load(DATA / "bird-3.1.8" / "healthy" / "pve")
    drift = [c for c in _checks(exp, old) if c.id.startswith("drift.")]
    skipped = {c.id for c in drift if c.status is Status.SKIP}
    assert skipped == {"drift.bird.config", "drift.nftables inet ibgp-tunnel"}
    assert all("saved before doctor read" in c.summary for c in drift if c.status is Status.SKIP)


def test_text_and_protocol_reading() -> None:
    rendered = 'protocol static roa {\n  include "/var/lib/x/roa4.conf";\n}\n'
    lab = 'protocol static roa {\n  include "/run/lab/dn42/roa/dmz/roa4.conf";\n}\n\n'
    assert text_drift(rendered, lab, contained=False) is None
    other = 'protocol static roa {\n  include "/tmp/evil.conf";\n}\n'
    drift = text_drift(rendered, other, contained=False)
    assert drift is not None and drift.changes == (
        '- include "roa4.conf";',
        '+ include "evil.conf";',
    )
    found = config_protocols(
        "/* protocol bgp commented { */\n"
        "protocol device {\n}\n"
        "# protocol bgp hidden {\n"
        "template bgp peers {\n}\n"
        "protocol bgp a from peers {\n  ipv4 { import all; };\n}\n"
        'protocol static { include "x"; }\n'
    )
    assert found.named == {"a"} and found.unnamed_types == {"device", "static"}
    assert not found.includes_at_top
    assert config_protocols('include "more.conf";\n').includes_at_top
    # `protocol ospf v2 NAME`: the version is no name.
    assert config_protocols("protocol ospf v2 home {\n}\n").named == {"home"}
    many = text_drift("a;\n", "b;\nc;\nd;\ne;\n", contained=False)
    assert many is not None and many.excerpt() == "- a; | + b; | + c; | and 2 more"


def test_table_that_is_not_nfts_print_is_all_drift(expect: dict[str, Expectations]) -> None:
    rendered = expect["pve"].nft_ruleset
    drift = nft_drift(rendered, "garbage\n}\n{\nchain\n")
    assert drift is not None
    assert set(drift.changes) == {
        "chain forward is missing",
        "chain input is missing",
        "chain postrouting is missing",
    }


def test_birds_clock_from_both_birds() -> None:
    for bird in BIRDS:
        status = (DATA / bird / "healthy" / "pve" / "bird_status.txt").read_text()
        ago = reconfigured_ago(status)
        assert ago is not None and 0 < ago < 60
    assert reconfigured_ago("BIRD 2.0.12 ready.\nDaemon is up and running\n") is None
    assert file_age("100.5 110.0\n") == 9.5
    assert file_age("garbage") is None


# --- WireGuard --------------------------------------------------------------------------------


def _wg_edited(bird: str, host: str, edit: object) -> Snapshot:
    snap = saved.load(DATA / bird / "healthy" / host)
    output = snap.get("wg")
    assert callable(edit)
    snap.outputs["wg"] = replace(output, stdout=edit(output.stdout))
    return snap


def _peer_field(text: str, interface: str, index: int, value: str) -> str:
    lines = [line.split("\t") for line in text.splitlines()]
    for fields in lines:
        if len(fields) == 9 and fields[0] == interface:
            fields[index] = value
    return "\n".join("\t".join(f) for f in lines) + "\n"


@pytest.mark.parametrize("bird", BIRDS)
def test_allowed_ips_changed_by_hand_come_before_the_handshake(
    expect: dict[str, Expectations], bird: str
) -> None:
    snap = _wg_edited(bird, "pve", lambda t: _peer_field(t, "wg-ibgp", 4, "10.255.255.0/30"))
    first = _first_failure(_checks(expect["pve"], snap))
    assert first is not None and first.id == "drift.wireguard wg-ibgp dmz allowed-ips", first
    assert "+ 10.255.255.0/30" in first.evidence and "- 0.0.0.0/1" in first.evidence
    assert first.fix.startswith(
        "`wg set wg-ibgp peer utJgjmf7Nfo3zueLm52UuanyJ0gccd4c6dOTO4sckgk= allowed-ips "
        "0.0.0.0/1,128.0.0.0/1,::/1,8000::/1`"
    )
    assert "systemctl restart wireguard-wg-ibgp" in first.fix


@pytest.mark.parametrize("bird", BIRDS)
def test_endpoint_and_extra_peer(expect: dict[str, Expectations], bird: str) -> None:
    snap = _wg_edited(bird, "pve", lambda t: _peer_field(t, "wg-ibgp", 3, "203.0.113.99:51821"))
    first = _first_failure(_checks(expect["pve"], snap))
    assert first is not None and first.id == "drift.wireguard wg-ibgp dmz endpoint", first
    assert "203.0.113.99:51821" in first.summary and "203.0.113.10:51821" in first.fix
    extra = "wg-ibgp\tHANDMADE+KEY=\t(none)\t(none)\t192.0.2.0/24\t0\t0\t0\toff\n"
    snap = _wg_edited(bird, "dmz", lambda t: t + extra)
    first = _first_failure(_checks(expect["dmz"], snap))
    assert first is not None and first.id == "drift.wireguard wg-ibgp extra-peer HANDMADE", first
    assert "192.0.2.0/24" in first.evidence
    assert "`wg set wg-ibgp peer HANDMADE+KEY= remove`" in first.fix


def test_endpoint_comparison() -> None:
    assert not _endpoint_differs("203.0.113.10:51821", "203.0.113.10:51821")
    assert _endpoint_differs("203.0.113.10:51821", "203.0.113.10:51822")
    assert _endpoint_differs("203.0.113.10:51821", None)
    # A name: wg shows what it resolved to; only the port can be compared.
    assert not _endpoint_differs("vps.example.org:51821", "198.51.100.1:51821")
    assert _endpoint_differs("vps.example.org:51821", "198.51.100.1:1")
    assert not _endpoint_differs("[2001:db8::1]:51821", "[2001:db8:0::1]:51821")


# --- hostile input ----------------------------------------------------------------------------


def test_hostile_running_state_is_quoted_cleanly(expect: dict[str, Expectations]) -> None:
    """A planted bird.conf with a terminal escape and a session password, and a wg peer
    whose key is an escape sequence: the report prints neither raw, nor the password."""
    exp = expect["pve"]
    edited = (
        exp.bird_config + '\n# \x1b[2J\x1b]0;pwned\x07\nprotocol bgp x { password "s3cret"; }\n'
    )
    snap = _with_drift_reads("bird-3.1.8", "pve", exp, config=edited)
    evil = "wg-ibgp\t\x1b[31mEVIL\t(none)\t(none)\t0.0.0.0/0\t0\t0\t0\toff\n"
    snap.outputs["wg"] = replace(snap.get("wg"), stdout=snap.get("wg").stdout + evil)
    text = as_text("pve", "test", _checks(exp, snap))
    assert "\x1b" not in text and "\x07" not in text
    assert "s3cret" not in text
    assert "drift.wireguard wg-ibgp extra-peer" in text


def test_reading_the_config_file_refuses_what_is_no_config(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert read_config(str(fifo)).error.endswith("is not a regular file")  # no hang
    assert "No such file" in read_config(str(tmp_path / "none")).error
    big = tmp_path / "big"
    with big.open("wb") as out:
        out.truncate(MAX_CONFIG_BYTES + 1)
    assert "larger than" in read_config(str(big)).error
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe")
    assert "not UTF-8" in read_config(str(binary)).error
    real = tmp_path / "real.conf"
    real.write_text('protocol bgp x { password "s3cret"; }\n')
    link = tmp_path / "bird.conf"
    link.symlink_to(real)  # NixOS's /etc/bird/bird.conf is a symlink
    found = read_config(str(link))
    assert found.text == 'protocol bgp x { password "(hidden)"; }\n'
    assert found.read_at >= found.mtime > 0
    snap = Snapshot()
    read_bird_config(snap, str(link))
    assert "s3cret" not in snap.outputs["bird_config"].stdout
    assert file_age(snap.outputs["bird_config_mtime"].stdout) is not None

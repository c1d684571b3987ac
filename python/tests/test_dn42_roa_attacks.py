"""A ROA download is data, never config (modules/lib/resources/dn42-roa-update.sh),
against a running BIRD 3 and BIRD 2: bird.conf includes the file inside a
`protocol static`, textually, so a file that closes the block could add its
own protocols, routes or functions. Every file that is not comments, blank
lines and `route <prefix> max <len> as <asn>;` entries of its family is
refused as a whole; the installed file, BIRD's protocols, routes and ROA
tables stay as they were, and the run fails (exit 1).

Where a payload is valid BIRD, the test first shows that the real config would
load with it (so only the grammar stops it: these are working attacks)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_dn42_roa import BIRDS, V4_OK, V6_OK, Roa
from test_dn42_roa import pytestmark as roa_marks

pytestmark = roa_marks

REOPEN4 = "protocol static evil_tail {\n  roa4 { table dn42_roa4; };\n"
CLOSE = V4_OK + "}\n"

# id -> (family, payload, loads in the real bird.conf as it is)
ATTACKS: dict[str, tuple[str, str, bool]] = {
    "close-block-static-default-route": (
        "ipv4",
        CLOSE + "protocol static evil4 {\n  ipv4;\n  route 0.0.0.0/0 unreachable;\n}\n" + REOPEN4,
        True,
    ),
    "close-block-bgp": (
        "ipv4",
        CLOSE + "protocol bgp evil_bgp {\n  local as 65000;\n  neighbor 192.0.2.9 as 65001;\n"
        "  ipv4 { import all; export all; };\n}\n" + REOPEN4,
        True,
    ),
    "close-block-function": (
        "ipv4",
        CLOSE + "function evil_function() {\n  return true;\n}\n" + REOPEN4,
        True,
    ),
    "close-block-define": ("ipv4", CLOSE + "define EVIL = 4242;\n" + REOPEN4, True),
    "one-line-close-and-static": (
        "ipv4",
        "route 172.21.80.0/24 max 24 as 4242421080; } protocol static evil4 { ipv4; "
        "route 0.0.0.0/0 unreachable; } protocol static evil_tail { roa4 { table dn42_roa4; };\n",
        True,
    ),
    "ipv6-close-block-static": (
        "ipv6",
        V6_OK + "}\nprotocol static evil6 {\n  ipv6;\n  route ::/0 unreachable;\n}\n"
        "protocol static evil_tail6 {\n  roa6 { table dn42_roa6; };\n",
        True,
    ),
    "include-etc-shadow": ("ipv4", V4_OK + 'include "/etc/shadow";\n', False),
    "include-bird-conf": ("ipv4", V4_OK + 'include "/etc/hostname";\n', False),
    "trailing-comment": ("ipv4", "route 172.21.80.0/24 max 24 as 4242421080; # ok?\n", True),
    "comment-hides-semicolon": (
        "ipv4",
        "route 172.21.80.0/24 max 24 as 4242421080 /* ; */;\n",
        True,
    ),
    "block-comment-line": ("ipv4", V4_OK + "/* } */\n", True),
    "block-comment-spanning-lines": ("ipv4", V4_OK + "/*\n}\n*/\n", True),
    "multi-line-statement": ("ipv4", "route 172.21.80.0/24\n  max 24 as 4242421080;\n", True),
    "two-statements-one-line": (
        "ipv4",
        "route 172.21.80.0/24 max 24 as 4242421080; route 172.21.81.0/24 max 24 as 1;\n",
        True,
    ),
    "double-semicolon": ("ipv4", "route 172.21.80.0/24 max 24 as 4242421080;;\n", True),
    "uppercase-keyword": ("ipv4", "ROUTE 172.21.80.0/24 max 24 as 4242421080;\n", False),
    "fullwidth-semicolon": ("ipv4", "route 172.21.80.0/24 max 24 as 4242421080\uff1b\n", False),
    "cyrillic-o-in-route": ("ipv4", "r\u043eute 172.21.80.0/24 max 24 as 4242421080;\n", False),
    "no-break-space": ("ipv4", "route\u00a0172.21.80.0/24 max 24 as 4242421080;\n", False),
    "non-ascii-comment": ("ipv4", "# caf\u00e9\n" + V4_OK, True),
    "nul-byte-after-entry": ("ipv4", V4_OK + "\x00\n", False),
    "nul-byte-in-comment": ("ipv4", "# a\x00b\n" + V4_OK, True),
    "carriage-return": ("ipv4", "route 172.21.80.0/24 max 24 as 4242421080;\r\n", False),
    "very-long-comment": ("ipv4", "#" + "x" * 5000 + "\n" + V4_OK, True),
    "very-long-route-line": (
        "ipv4",
        "route 172.21.80.0/24" + " " * 300 + "max 24 as 4242421080;\n",
        True,
    ),
    "empty-file": ("ipv4", "", True),
    "comments-only": ("ipv4", "#\n# dn42regsrv ROA Generator\n#\n", True),
    "blank-lines-only": ("ipv6", "\n  \n\t\n", True),
    "ipv6-entry-in-ipv4-file": ("ipv4", "route fd42:4200::/48 max 64 as 4242421080;\n", False),
    "ipv4-entry-in-ipv6-file": ("ipv6", V4_OK, False),
    "ipv4-mapped-in-ipv6-file": ("ipv6", "route ::ffff:172.21.80.0/120 max 128 as 1;\n", True),
    "max-below-prefix-length": ("ipv4", "route 172.21.80.0/24 max 23 as 4242421080;\n", False),
    "max-above-32": ("ipv4", "route 172.21.80.0/24 max 33 as 4242421080;\n", False),
    "max-above-128": ("ipv6", "route fd42:4200::/48 max 129 as 4242421080;\n", False),
    "prefix-length-33": ("ipv4", "route 172.21.80.0/33 max 33 as 4242421080;\n", False),
    "asn-above-32-bits": ("ipv4", "route 172.21.80.0/24 max 24 as 4294967296;\n", False),
    "asn-negative": ("ipv4", "route 172.21.80.0/24 max 24 as -1;\n", False),
    "asn-hex": ("ipv4", "route 172.21.80.0/24 max 24 as 0x10;\n", True),
    "octet-256": ("ipv4", "route 256.21.80.0/24 max 24 as 4242421080;\n", False),
    "octet-leading-zero": ("ipv4", "route 172.021.80.0/24 max 24 as 4242421080;\n", True),
    "ipv6-two-double-colons": ("ipv6", "route fd42::4200::/48 max 64 as 1;\n", False),
    "ipv6-group-too-long": ("ipv6", "route fd42:42000::/48 max 64 as 1;\n", False),
    "ipv6-leading-colon": ("ipv6", "route :fd42::/48 max 64 as 1;\n", False),
    "ipv6-nine-groups": ("ipv6", "route 1:2:3:4:5:6:7:8:9/128 max 128 as 1;\n", False),
    "entries-then-garbage": ("ipv4", V4_OK + "<html>rate limited</html>\n", False),
}


def _protocols(roa: Roa) -> list[str]:
    out = subprocess.run(
        [str(roa.bird_dir / "birdc"), "-s", str(roa.socket), "show", "protocols"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # The header line names the columns; every other line starts with a protocol name.
    return sorted(line.split()[0] for line in out.splitlines()[2:] if line.strip())


def _state(roa: Roa) -> tuple[object, ...]:
    """What BIRD runs: its protocols, the routes of its main tables, the ROA tables,
    and when it last reconfigured."""
    status = subprocess.run(
        [str(roa.bird_dir / "birdc"), "-s", str(roa.socket), "show", "status"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    reconfigured = [line for line in status.splitlines() if "reconfiguration" in line.lower()]
    tables = [roa.table(name) for name in ("master4", "master6", "dn42_roa4", "dn42_roa6")]
    return (_protocols(roa), tables, reconfigured)


# BIRD 3 keeps times on a monotonic clock and converts them to wall-clock time
# when it prints them, so the same route's time can read 1 ms apart from one
# `show` to the next. A re-import or reconfiguration during a run moves a time
# by the run's length (tens of milliseconds at least).
_TIME = re.compile(r"\b(\d\d):(\d\d):(\d\d)\.(\d{3})\b")
_JITTER_MS = 2


def _split_times(state: object) -> tuple[str, list[int]]:
    text = repr(state)
    times = [
        ((int(h) * 60 + int(m)) * 60 + int(s)) * 1000 + int(ms)
        for h, m, s, ms in _TIME.findall(text)
    ]
    return _TIME.sub("<time>", text), times


def _same_state(now: object, before: object) -> bool:
    now_text, now_times = _split_times(now)
    before_text, before_times = _split_times(before)
    return (
        now_text == before_text
        and len(now_times) == len(before_times)
        and all(abs(a - b) <= _JITTER_MS for a, b in zip(now_times, before_times, strict=True))
    )


def loads_in_real_config(roa: Roa, family: str, payload: str, tmp: Path) -> bool:
    """Would BIRD load the reflector's bird.conf with this file included? (What the
    script checked before: a file that BIRD accepts where it is included.)"""
    candidate = tmp / "candidate.conf"
    candidate.write_bytes(payload.encode())
    target = roa.file4 if family == "ipv4" else roa.file6
    conf = tmp / "check.conf"
    conf.write_text(roa.conf.read_text().replace(f'"{target}"', f'"{candidate}"'))
    done = subprocess.run(
        [str(roa.bird_dir / "bird"), "-p", "-c", str(conf)], capture_output=True, check=False
    )
    return done.returncode == 0


@pytest.fixture(scope="module", params=BIRDS, ids=[name for name, _ in BIRDS])
def running(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Roa]:
    """One BIRD per version for every payload, with good files installed: a refused
    payload changes nothing, which each test checks against the state before it."""
    roa = Roa(tmp_path_factory.mktemp("roa"), request.param[1])
    roa.start_bird()
    try:
        roa.serve(V4_OK, V6_OK)
        first = roa.run()
        assert first.returncode == 0, first.stderr
        yield roa
    finally:
        roa.stop()


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_an_attack_file_is_refused_and_changes_nothing(
    running: Roa, attack: str, tmp_path: Path
) -> None:
    family, payload, loads = ATTACKS[attack]
    if loads:
        # A working attack: BIRD itself would take it where the file is included.
        assert loads_in_real_config(running, family, payload, tmp_path), attack
    before = _state(running)
    installed = (running.file4.read_bytes(), running.file6.read_bytes())
    running.serve(V4_OK, V6_OK)
    (running.source / f"roa{family[-1]}.conf").write_bytes(payload.encode())

    result = running.run()

    assert result.returncode == 1, result.stdout
    assert f"not a BIRD {family} ROA file" in result.stderr
    assert "updated" not in result.stdout and "reconfigured" not in result.stdout
    assert (running.file4.read_bytes(), running.file6.read_bytes()) == installed
    assert sorted(p.name for p in running.installed.iterdir()) == [
        "dn42_roa4.conf",
        "dn42_roa6.conf",
    ]
    assert running.alive()
    after = _state(running)
    assert _same_state(after, before), (after, before)
    # Refused again on the next run: never "unchanged" success.
    assert running.run().returncode == 1
    running.serve(V4_OK, V6_OK)

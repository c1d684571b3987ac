"""doctor's dn42.rpki line (RPKI over RTR): what BIRD's `show protocols` says of its
`protocol rpki` caches, parsed as doctor parses it. The lab test (test_lab_rtr.py)
shows the same line on a running BIRD with its cache stopped."""

from __future__ import annotations

from ibgp_tunnel.doctor.checks.rpki import check_rpki_caches
from ibgp_tunnel.doctor.live import Live
from ibgp_tunnel.doctor.parse_bird import BirdStatus, parse_protocols

UP = BirdStatus("3.1.8", up=True, recovering=False, recovery_detail="")
HEADER = "Name       Proto      Table      State  Since         Info\n"


def live(rows: str, bird: BirdStatus | None = UP) -> Live:
    return Live(now=0.0, bird=bird, protocols=parse_protocols(HEADER + rows))


def check(rows: str, bird: BirdStatus | None = UP) -> list[dict[str, str]]:
    return [c.as_dict() for c in check_rpki_caches(None, live(rows, bird))]  # type: ignore[arg-type]


BGP = "dn42_peer1 BGP        ---        up     12:00:00.000  Established\n"
ONE_UP = "dn42_rpki_1 RPKI       ---        up     12:00:00.000  Established\n"
TWO_DOWN = "dn42_rpki_2 RPKI       ---        start  12:00:00.000  Connect\n"
ONE_DOWN = "dn42_rpki_1 RPKI       ---        start  12:00:00.000  Connect\n"


def test_no_rtr_no_line() -> None:
    assert check(BGP) == []


def test_every_cache_answering_is_ok() -> None:
    (line,) = check(BGP + ONE_UP)
    assert line["id"] == "dn42.rpki" and line["status"] == "ok"


def test_one_cache_gone_of_two_is_a_warning_naming_it() -> None:
    (line,) = check(ONE_UP + TWO_DOWN)
    assert line["status"] == "warn" and "dn42_rpki_2" in line["summary"]
    assert "the others keep the ROA tables current" in line["summary"]


def test_every_cache_gone_says_the_table_is_kept() -> None:
    (line,) = check(BGP + ONE_DOWN + TWO_DOWN)
    assert line["status"] == "warn"
    assert "every RTR cache is gone" in line["summary"] and "48 h" in line["summary"]
    assert "ibgp-tunnel-stayrtr" in line["fix"]


def test_a_merged_configs_names_count_and_others_do_not() -> None:
    merged = ONE_DOWN.replace("dn42_rpki_1", "ibgpt_dn42_rpki_1")
    assert check(merged)[0]["status"] == "warn"
    assert check(ONE_DOWN.replace("dn42_rpki_1", "someone_rpki")) == []


def test_bird_down_is_said_elsewhere() -> None:
    assert check(ONE_DOWN, bird=None) == []

"""lab/pings.py: every lost ping in a gap, from recorded `ping -n -D -O -i 0.01` output.

data/ping-hole-29-46.txt was recorded in a namespace whose loopback was taken down
for 0.3 s: sequence numbers 29 to 46 (18 pings) went unanswered, 90 of 108 came
back. The cases cut that recording so the hole sits at the start or the end of
the window, where the benches used to miss it (reply timestamps only)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ibgp_tunnel.lab import pings

RECORDED = (Path(__file__).resolve().parent / "data" / "ping-hole-29-46.txt").read_text()
INTERVAL = 0.01


def _cut(text: str, keep: range, transmitted: int) -> str:
    """The recording with only replies whose sequence number is in `keep`, and a
    summary that says `transmitted` were sent."""
    lines = []
    for line in text.splitlines():
        m = re.search(r"icmp_seq=(\d+)", line)
        if m and int(m[1]) not in keep:
            continue
        if "packets transmitted" in line:
            continue
        lines.append(line)
    received = sum(1 for line in lines if " bytes from " in line)
    lines.append(f"{transmitted} packets transmitted, {received} received, 0% packet loss")
    return "\n".join(lines) + "\n"


def test_the_recorded_hole_is_one_gap_of_18() -> None:
    acc = pings.account(RECORDED, INTERVAL)
    assert (acc.transmitted, acc.received, acc.lost) == (108, 90, 18)
    assert [(g.first, g.last, g.open_start, g.open_end) for g in acc.gaps] == [
        (29, 46, False, False)
    ]
    # Timed from the replies around the hole (28 and 47), not from the count.
    stamps = dict(
        (int(m[2]), float(m[1]))
        for m in re.finditer(r"^\[(\d+\.\d+)\] .*icmp_seq=(\d+) ttl", RECORDED, re.M)
    )
    assert acc.longest_gap_s == pytest.approx(stamps[47] - stamps[28])
    assert acc.longest_gap_s > 18 * INTERVAL


def test_a_hole_at_the_end_is_counted_and_open() -> None:
    # Replies up to 28, then 60 more sent without an answer: the old bench's
    # longest gap between replies was 0.02 s for such a sample.
    acc = pings.account(_cut(RECORDED, range(1, 29), 88), INTERVAL)
    assert acc.lost == 60
    assert acc.open_end and acc.gaps[-1].lost == 60
    assert acc.longest_gap_s >= 60 * INTERVAL


def test_a_hole_at_the_start_is_counted_and_open() -> None:
    acc = pings.account(_cut(RECORDED, range(47, 109), 108), INTERVAL)
    assert acc.lost == 46
    assert [(g.first, g.last, g.open_start) for g in acc.gaps] == [(1, 46, True)]


def test_the_last_ping_in_flight_is_not_lost() -> None:
    acc = pings.account(_cut(RECORDED, range(47, 108), 108), INTERVAL)
    assert (acc.lost, acc.in_flight) == (46, 1)


def test_counts_that_disagree_are_refused() -> None:
    broken = RECORDED.replace("90 received", "91 received")
    with pytest.raises(pings.PingAccountError, match="91 received"):
        pings.account(broken, INTERVAL)
    with pytest.raises(pings.PingAccountError, match="no summary"):
        pings.account("PING 10.0.0.1\n", INTERVAL)


def test_sequence_numbers_that_wrap_stay_in_order() -> None:
    # 65534, 65535, then 0 and 1 (the 16-bit counter wrapped), 2 lost, 3 back.
    lines = [
        f"[{1000 + i * 0.01:.6f}] 64 bytes from 10.0.0.1: icmp_seq={seq} ttl=64 time=0.1 ms"
        for i, seq in enumerate((65534, 65535, 0, 1, 3))
    ]
    replies = pings._unwrap(
        [(float(m[1]), int(m[2])) for m in pings._REPLY.finditer("\n".join(lines))]
    )
    assert sorted(replies) == [65534, 65535, 65536, 65537, 65539]

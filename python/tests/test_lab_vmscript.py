"""The VM test's testScript (checks/vm-test.py, as vm-test.nix gives it to the
NixOS test driver) run unchanged against the lab through the driver stand-in
of checks/run/ (what `scripts/flake-checks vm` runs): every subtest passes, and
the port check it had before issue 18 fails against NixOS's firewall, which
writes dmz's WireGuard and DN42 ports as one set.

A lab of this module's own (the tests' lab directory and prefix, with a "v").
BIRD 3 unless IBGP_TUNNEL_BIRD_DIR names another."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from labtools import REPO, TEST_LAB_DIR, TEST_PREFIX, skip_reason

from ibgp_tunnel.lab.down import down

sys.path.insert(0, str(REPO / "checks" / "run"))

import nixos_test_driver as driver
import vm

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))

LAB_DIR = Path(TEST_LAB_DIR + "-vm")
PREFIX = TEST_PREFIX[:-1] + "v-"
PORT_SUBTEST = "the WireGuard port is open on the reflector only"
# The subtest as it was until issue 18: one port, written as NixOS writes a lone one.
OLD_PORT_SUBTEST = f"""
with subtest("{PORT_SUBTEST}"):
    dmz.succeed("nft list ruleset | grep -q 'udp dport 51821 accept'")
"""


@pytest.fixture(scope="module")
def ran() -> Iterator[tuple[str, driver.Run, Any, BaseException | None]]:
    script = vm.test_script()
    try:
        run, backend, error = vm.run_on_lab(script, LAB_DIR, PREFIX, keep_up=True)
        yield script, run, backend, error
    finally:
        down(LAB_DIR)


def _prelude(script: str) -> str:
    """Everything before the first subtest: the values, the helpers, start_all()."""
    first = next(s for s in ast.parse(script).body if driver.subtest_title(s) is not None)
    return "\n".join(script.splitlines()[: first.lineno - 1]) + "\n"


def _subtest_source(script: str, title: str) -> str:
    (statement,) = [s for s in ast.parse(script).body if driver.subtest_title(s) == title]
    source = ast.get_source_segment(script, statement)
    assert source is not None
    return source + "\n"


def test_every_subtest_of_the_vm_test_passes_on_the_lab(
    ran: tuple[str, driver.Run, Any, BaseException | None],
) -> None:
    script, run, _, error = ran
    assert error is None, "\n".join(vm.summary(run))
    titles = [s for s in map(driver.subtest_title, ast.parse(script).body) if s is not None]
    ran_titles = [o.title for o in run.outcomes if not o.title.startswith("(")]
    assert ran_titles == titles
    assert all(o.error is None for o in run.outcomes)
    # Self-service peering's subtests run on the lab's dmz (autopeer on, as in
    # vm-test.nix) with the VM test's outside router; only the units' own users
    # need a VM (the lab runs them as root).
    autopeer = [o for o in run.outcomes if o.title.startswith("autopeer:")]
    assert len(autopeer) == 4, [o.title for o in autopeer]
    assert all(o.needs_vm is None for o in run.outcomes if o not in autopeer)
    users = [o for o in autopeer if o.needs_vm is not None]
    assert [o.title for o in users] == [
        "autopeer: the web service's user cannot read peers/ or write status/"
    ]
    assert vm.AUTOPEER_USERS in str(users[0].needs_vm)
    ran_here = ("ran on lab", "mapped to lab equivalent")
    assert all(o.status in ran_here for o in autopeer if o not in users)
    # What the lab cannot show is said, not passed over.
    exporters = next(o for o in run.outcomes if o.title.startswith("the exporters"))
    assert any("needs a real VM" in note for note in exporters.notes), exporters.notes
    keys = next(o for o in run.outcomes if o.title.startswith("keys never"))
    assert any("needs a real VM" in note for note in keys.notes), keys.notes


def test_the_old_port_check_fails_against_nixos_firewall_and_the_new_one_passes(
    ran: tuple[str, driver.Run, Any, BaseException | None],
) -> None:
    script, _, backend, _ = ran
    # What NixOS writes for two global ports and autopeer's range, as nft lists
    # it on the lab's dmz: the DN42 port 21080 merged into the range.
    chain = driver.Machine("dmz", backend, driver.Run()).succeed(
        "nft list chain inet nixos-fw input-allow"
    )
    assert "udp dport { 20000-29999, 51821 } accept" in chain, chain
    prelude = _prelude(script)
    old = driver.Run(log=lambda _: None)
    with pytest.raises(driver.RequestedAssertionFailed, match="udp dport 51821 accept"):
        driver.run_script(prelude + OLD_PORT_SUBTEST, backend, list(backend.nodes), old)
    assert [o.error is not None for o in old.outcomes if o.title == PORT_SUBTEST] == [True]
    new = driver.Run(log=lambda _: None)
    port_subtest = _subtest_source(script, PORT_SUBTEST)
    driver.run_script(prelude + port_subtest, backend, list(backend.nodes), new)
    assert [o.status for o in new.outcomes if o.title == PORT_SUBTEST] == ["ran on lab"]


def test_the_refused_dn42_route_is_really_announced(
    ran: tuple[str, driver.Run, Any, BaseException | None],
) -> None:
    """The ROA subtest's `fail`s prove something only while peer1 exports the hijack."""
    script, _, backend, _ = ran
    hijack = vm.script_values(script)["hijack_v4"]
    peer = driver.Machine("peer1", backend, driver.Run())
    out = peer.succeed(f"birdc show route {hijack}")
    assert hijack in out, out

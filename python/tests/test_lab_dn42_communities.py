"""DN42 communities both ways in the lab (issue 22, items 1 and 5): the example
plan's reflector announcing a DN42 prefix of its own and exporting it to peer1;
the lab's DN42 peer (its own BIRD behind the module's WireGuard tunnel) sees our
(64511, x) link communities on it.

BIRD 3 unless IBGP_TUNNEL_BIRD_DIR names another (run again with
.cache/bird/bird2/bin for BIRD 2). Its own lab directory and namespace prefix,
beside the other lab tests'."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from labtools import (
    EXAMPLE_PLAN,
    REPO,
    TEST_LAB_DIR,
    TEST_PREFIX,
    Lab,
    birdc,
    environment,
    poll,
    skip_reason,
)
from test_dn42_communities import OWN_V4, OWN_V6, exporting_plan

from ibgp_tunnel import planfile
from ibgp_tunnel.lab import dn42lab, location
from ibgp_tunnel.lab.artifacts import saved_artifacts
from ibgp_tunnel.lab.down import down
from ibgp_tunnel.lab.topology import build_topology
from ibgp_tunnel.lab.up import find_secrets_dir, up

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))

LAB_DIR = TEST_LAB_DIR + "-dn42c"
PREFIX = TEST_PREFIX[:-1] + "c-"
REFLECTOR, CLIENT, PEER = "dmz", "pve", "dn42"
# Polled conditions get a generous deadline on a loaded machine; timings go in bench/.
DEADLINE = 90


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, dn42lab.Dn42Lab]]:
    plan_path = exporting_plan(tmp_path_factory.mktemp("dn42c-plan"))
    with environment(
        **{
            location.LAB_DIR_ENV: LAB_DIR,
            location.PREFIX_ENV: PREFIX,
            "SOPS_AGE_KEY_FILE": str(REPO / "secrets" / "test-age-key.txt"),
        }
    ):
        down()
        try:
            plan = planfile.load(plan_path)
            secrets = find_secrets_dir(EXAMPLE_PLAN, planfile.load(EXAMPLE_PLAN))
            st = up(plan_path, timeout=90, secrets_dir=secrets)
            topo = build_topology(plan, PREFIX)
            artifacts = saved_artifacts(Path(LAB_DIR))
            yield Lab(st, plan, artifacts, topo), dn42lab.Dn42Lab(Path(LAB_DIR), topo)
        finally:
            down()


@pytest.mark.parametrize("prefix", [OWN_V4, OWN_V6])
def test_the_dn42_peer_sees_our_link_communities_on_our_routes(
    lab: tuple[Lab, dn42lab.Dn42Lab], prefix: str
) -> None:
    env, _ = lab

    def received() -> str | None:
        out = birdc(env.st, PEER, "show", "route", prefix, "all")
        return out if prefix in out else None

    out = poll(received, DEADLINE, f"{prefix} at the DN42 peer")
    # hosts/plan.toml's peer1: latency 2, bandwidth 24; crypto 34 from the WireGuard tunnel.
    assert "(64511,2) (64511,24) (64511,34)" in out, out
    # Only what the export sets hold: the reflector's other statics (cf) stay home.
    assert "104.16.0.0/13" not in birdc(env.st, PEER, "show", "route", "all")

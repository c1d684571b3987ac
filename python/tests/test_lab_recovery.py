"""A reflector that starts while a client is down (tests/plans/three-clients.toml,
laptop down) in the lab, with graceful restart on (the default).

BIRD's graceful-restart recovery (`bird -R`) holds every kernel route until each
BGP neighbour has sent End-of-RIB or come up without graceful restart; a down
neighbour sends neither, so only `graceful restart wait` ends it (BIRD's
nest/proto.c; no birdc command does). The unit and the lab therefore start BIRD
with -R only when the kernel holds routes a previous BIRD left
(modules/ibgp-tunnel/bird-start.nix): a reflector starting on an empty kernel
(a boot) writes its routes as soon as its neighbours that are up sent them,
while one that crashed recovers what it left. Assertions are on BIRD's state
and on order (routes in the kernel while laptop's session is still down), never
on timings.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from labtools import (
    THREE_CLIENTS_PLAN,
    Lab,
    birdc,
    clear_test_lab,
    kernel_prefixes,
    poll,
    skip_reason,
)

from ibgp_tunnel import planfile
from ibgp_tunnel.lab import faults
from ibgp_tunnel.lab.artifacts import saved_artifacts
from ibgp_tunnel.lab.down import down
from ibgp_tunnel.lab.status import parse_protocols, recovering, sessions_established
from ibgp_tunnel.lab.topology import build_topology, expected_kernel_routes
from ibgp_tunnel.lab.up import up

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))

REFLECTOR, DOWN_CLIENT = "vps", "laptop"
DEADLINE = 60


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    clear_test_lab()
    try:
        st = up(THREE_CLIENTS_PLAN, timeout=60)
        plan = planfile.load(THREE_CLIENTS_PLAN)
        yield Lab(st, plan, saved_artifacts(Path(st.lab_dir)), build_topology(plan))
    finally:
        down()


def _session_state(lab: Lab, host: str, protocol: str) -> str:
    protocols = parse_protocols(birdc(lab.st, host, "show", "protocols"))
    return next(p.info for p in protocols if p.name == protocol)


def _reflector_recovering(lab: Lab) -> bool:
    return recovering(lab.st.nodes[REFLECTOR]["bird_socket"])


def _bring_laptop_back(lab: Lab) -> None:
    faults.start_bird(lab.st, DOWN_CLIENT)
    poll(lambda: sessions_established(lab.st)[0], DEADLINE, "every session Established again")
    poll(lambda: not _reflector_recovering(lab), DEADLINE, "the reflector's recovery ended")


def test_a_reflector_starting_on_an_empty_kernel_does_not_wait_for_a_down_client(
    lab: Lab,
) -> None:
    expected = expected_kernel_routes(lab.artifacts, REFLECTOR)
    assert expected, "the reflector's kernel should get the LANs and DN42's routes"
    faults.stop_bird(lab.st, DOWN_CLIENT)
    # `birdc down` takes the reflector's routes out of its kernel: a boot's state.
    faults.stop_bird(lab.st, REFLECTOR)
    assert kernel_prefixes(lab.st, REFLECTOR) == set()
    try:
        faults.start_bird(lab.st, REFLECTOR)
        # Nothing to recover: no recovery, hence nothing that waits for laptop.
        assert not _reflector_recovering(lab)
        poll(
            lambda: kernel_prefixes(lab.st, REFLECTOR) == expected,
            DEADLINE,
            "the reflector's kernel holds its routes",
        )
        # The routes came while laptop's session was (and is) down: they did not
        # wait for it, and no recovery timer ran that could have released them.
        assert _session_state(lab, REFLECTOR, f"ibgp_{DOWN_CLIENT}") != "Established"
        assert not _reflector_recovering(lab)
    finally:
        _bring_laptop_back(lab)


def test_a_crashed_reflector_recovers_the_routes_it_left(lab: Lab) -> None:
    expected = expected_kernel_routes(lab.artifacts, REFLECTOR)
    faults.stop_bird(lab.st, DOWN_CLIENT)
    faults.kill_bird(lab.st, REFLECTOR)
    # A crash leaves BIRD's routes in the kernel: the restarted BIRD keeps them
    # (forwarding goes on) and recovers, here waiting for laptop's End-of-RIB.
    assert kernel_prefixes(lab.st, REFLECTOR) == expected
    try:
        faults.start_bird(lab.st, REFLECTOR)
        assert _reflector_recovering(lab)
        assert kernel_prefixes(lab.st, REFLECTOR) == expected
    finally:
        # laptop's End-of-RIB (or the wait) ends it; either way all settles again.
        _bring_laptop_back(lab)
    poll(
        lambda: kernel_prefixes(lab.st, REFLECTOR) == expected,
        DEADLINE,
        "the reflector's kernel holds its routes after recovery",
    )

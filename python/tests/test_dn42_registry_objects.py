"""The lab's registry reader treats route objects as data written by strangers: a
planted object with BIRD syntax, a wrong family or an absurd max-length is left
out with a reason, never written into a ROA file or the RTR cache's JSON."""

from __future__ import annotations

from pathlib import Path

import pytest

from ibgp_tunnel.lab.registry import Roa, bird_roa_file, object_roas, registry_roas, roa_json

REGISTRY = Path(__file__).resolve().parents[3] / "shared" / "data" / "dn42-registry" / "data"


def obj(**fields: str) -> dict[str, list[str]]:
    return {key.replace("_", "-"): [value] for key, value in fields.items()}


@pytest.mark.parametrize(
    ("fields", "family", "reason"),
    [
        (
            obj(route='172.20.0.0/24; }; include "/etc/shadow"', origin="AS4242420000"),
            "ipv4",
            "not a network",
        ),
        (obj(route="172.20.0.1/24", origin="AS4242420000"), "ipv4", "not a network"),
        (obj(route6="fd00::/48", origin="AS4242420000"), "ipv4", "`route:` lines"),
        (obj(route="fd00::/48", origin="AS4242420000"), "ipv4", "not ipv4"),
        (obj(route="172.20.0.0/24", max_length="33", origin="AS4242420000"), "ipv4", "longer than"),
        (
            obj(route="172.20.0.0/24", max_length="24 as 0; route 0.0.0.0/0 max 32", origin="AS1"),
            "ipv4",
            "not a number",
        ),
    ],
)
def test_a_hostile_object_is_skipped_with_its_reason(
    fields: dict[str, list[str]], family: str, reason: str
) -> None:
    found = object_roas(fields, family)
    assert isinstance(found, str) and reason in found


def test_only_well_formed_origins_become_roas() -> None:
    fields = {
        "route": ["172.20.0.0/24"],
        "origin": ["AS4242420000", "AS1;", "AS99999999999", "4242420001"],
    }
    assert object_roas(fields, "ipv4") == [Roa("172.20.0.0/24", 29, 4242420000)]


def test_a_planted_object_never_reaches_the_roa_file_or_json(tmp_path: Path) -> None:
    (tmp_path / "route").mkdir()
    (tmp_path / "route" / "172.20.0.0_24").write_text(
        "route: 172.20.0.0/24\norigin: AS4242420000\n"
    )
    (tmp_path / "route" / "evil").write_text(
        'route: 172.20.1.0/24; include "evil.conf"\norigin: AS4242420001\n'
    )
    roas = registry_roas(tmp_path, "ipv4")
    assert roas == [Roa("172.20.0.0/24", 29, 4242420000)]
    assert "evil" not in bird_roa_file(roas, "t") and "evil" not in roa_json(roas)


@pytest.mark.skipif(
    not REGISTRY.is_dir(),
    reason="../shared/data/dn42-registry is absent (DN42's registry beside the checkout)",
)
@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_every_real_object_parses_or_is_skipped_with_a_reason(family: str) -> None:
    from ibgp_tunnel.lab.registry import KEYS, registry_objects

    results = [object_roas(fields, family) for fields in registry_objects(REGISTRY / KEYS[family])]
    parsed = [r for r in results if not isinstance(r, str)]
    assert len(parsed) > 1900
    assert all(isinstance(r, str) and r for r in results if isinstance(r, str))

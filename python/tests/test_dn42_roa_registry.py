"""Real DN42 data through the ROA refresh: a ROA table built at run time from the
registry snapshot beside the checkout (../shared/data/dn42-registry: every
`route`/`route6` object, as DN42's generators build the files the wiki points
to) passes the script's grammar unchanged, and the reflector's real rendered
bird.conf loads it on BIRD 3 and BIRD 2: the script installs it byte for byte
and BIRD's ROA tables hold every entry. Nothing of the registry is copied into
the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from nixcore import EXAMPLE_ROA_FILES_PLAN, needs_nix, render
from test_dn42_roa import BIRDS, REPO, Roa
from test_dn42_roa import pytestmark as roa_marks

from ibgp_tunnel.lab.registry import KEYS, bird_roa_file, registry_roas

REGISTRY = REPO.parent / "shared" / "data" / "dn42-registry" / "data"

pytestmark = [
    *roa_marks,
    needs_nix,
    pytest.mark.skipif(
        not REGISTRY.is_dir(),
        reason="../shared/data/dn42-registry is absent (DN42's registry beside the checkout)",
    ),
]


def registry_roa(registry: Path, family: str) -> tuple[str, int]:
    """The family's BIRD 2+ ROA file as DN42's generators write it (a `#` header, then
    `route <prefix> max <len> as <asn>;` per origin), and its number of entries (an
    origin listed twice is two, as BIRD counts the routes of a `protocol static`)."""
    roas = registry_roas(registry, family)
    title = f"ROA table from the DN42 registry's {KEYS[family]} objects (test-generated)"
    return bird_roa_file(roas, title), len(roas)


def _table_count(roa: Roa, table: str) -> int:
    out = roa.table(table + " count")
    match = re.search(r"^(\d+) of \d+ routes", out, re.M)
    return int(match[1]) if match else -1


@pytest.mark.parametrize("bird", BIRDS, ids=[name for name, _ in BIRDS])
def test_the_registry_table_loads_unchanged_in_the_real_config(
    bird: tuple[str, Path], tmp_path: Path
) -> None:
    roa = Roa(tmp_path, bird[1])
    v4, count4 = registry_roa(REGISTRY, "ipv4")
    v6, count6 = registry_roa(REGISTRY, "ipv6")
    # The snapshot's size (README: about 4,400 entries): the real thing, not a sample.
    assert count4 + count6 > 4000 and count4 > 2000 and count6 > 1900
    roa.serve(v4, v6)

    # The reflector's bird.conf as the core renders it with ROA files (the example's
    # twin), its ROA includes pointed here.
    artifacts = render(EXAMPLE_ROA_FILES_PLAN, "dmz")
    arguments = artifacts["dn42Roa"]["arguments"]
    config = artifacts["birdConfig"]
    for family, file in (("ipv4", roa.file4), ("ipv6", roa.file6)):
        rendered_file = arguments[arguments.index(family) + 2]
        config = config.replace(f'include "{rendered_file}";', f'include "{file}";')
    roa.installed.mkdir(parents=True)
    roa.file4.write_text("")
    roa.file6.write_text("")
    roa.conf.write_text(config)
    roa.start_bird(write_config=False)
    try:
        result = roa.run()
        assert result.returncode == 0, result.stderr
        assert roa.file4.read_text() == v4 and roa.file6.read_text() == v6
        assert _table_count(roa, arguments[3]) == count4
        assert _table_count(roa, arguments[7]) == count6
    finally:
        roa.stop()

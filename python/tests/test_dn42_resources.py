"""The fixed DN42 BIRD logic (modules/lib/resources/*.conf) parses on its own, on
BIRD 3, BIRD 2.17 and Debian's 2.0.12, as a BIRD user would check it: the file
plus one protocol (BIRD refuses a config without any)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from test_dn42_roa import BIRDS, RESOURCES

pytestmark = pytest.mark.skipif(not BIRDS, reason="no BIRD installed (scripts/setup installs it)")


@pytest.mark.parametrize("bird", BIRDS, ids=[name for name, _ in BIRDS])
@pytest.mark.parametrize("resource", ["dn42-communities.conf", "dn42-roa.conf"])
def test_resource_parses_on_its_own(resource: str, bird: tuple[str, Path], tmp_path: Path) -> None:
    conf = tmp_path / "check.conf"
    conf.write_text((RESOURCES / resource).read_text() + "protocol device {}\n")
    done = subprocess.run(
        [str(bird[1] / "bird"), "-p", "-c", str(conf)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "Inferring" not in done.stderr  # no BIRD 2.14+/3 warnings either

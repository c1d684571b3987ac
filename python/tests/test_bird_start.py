"""bird.service's ExecStart with graceful restart (modules/ibgp-tunnel/bird-start.nix),
run by bash in a network namespace of its own with the real `ip`: BIRD gets -R
(graceful restart recovery) only when the kernel holds routes a previous BIRD
left; with none (a boot, or after `birdc down`) -R would only hold every kernel
route until a down neighbour's End-of-RIB or `graceful restart wait`. `bird` is
a stand-in that records its arguments."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from nixcore import REPO, needs_nix, nix_eval

SCRIPT = REPO / "modules" / "ibgp-tunnel" / "bird-start.nix"
BIRD_LINE = ["-c", "/etc/bird/bird.conf"]

pytestmark = [
    needs_nix,
    pytest.mark.skipif(os.geteuid() != 0, reason="a network namespace of its own: needs root"),
]


def start_script(tmp_path: Path, ip: str) -> tuple[Path, Path, Path]:
    record = tmp_path / "bird-called-with"
    bird = tmp_path / "bird"
    bird.write_text(f'#!/bin/sh\necho "$*" > {record}\n')
    bird.chmod(0o755)
    text = nix_eval(f'import {SCRIPT} {{ ip = "{ip}"; }}')
    script = tmp_path / "bird-start"
    script.write_text(text)
    return script, bird, record


def run_in_fresh_netns(tmp_path: Path, setup: str, ip: str | None = None) -> str:
    """Run the start script in a new network namespace after `setup` (shell, with
    the real ip) and return the arguments the stand-in bird got."""
    real_ip = shutil.which("ip")
    assert real_ip
    script, bird, record = start_script(tmp_path, ip or real_ip)
    bash = shutil.which("bash")
    assert bash
    command = " ".join([bash, str(script), str(bird), *BIRD_LINE])
    body = f"set -e\n{real_ip} link set lo up\n{setup}\nexec {command}\n"
    result = subprocess.run(
        ["unshare", "--net", bash, "-c", body], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return record.read_text().strip()


def test_an_empty_kernel_starts_bird_without_recovery(tmp_path: Path) -> None:
    # Routes of other origins are not BIRD's to recover.
    setup = "ip route add 192.0.2.0/24 dev lo proto static\nip -6 route add 2001:db8::/48 dev lo"
    assert run_in_fresh_netns(tmp_path, setup) == " ".join(BIRD_LINE)


@pytest.mark.parametrize(
    "route",
    [
        "ip route add 192.0.2.0/24 dev lo proto bird",
        "ip -6 route add 2001:db8::/48 dev lo proto bird",
        # Any table: the kernel protocol may write to one of its own.
        "ip route add 192.0.2.0/24 dev lo proto bird table 100",
    ],
)
def test_routes_a_bird_left_start_it_with_recovery(tmp_path: Path, route: str) -> None:
    assert run_in_fresh_netns(tmp_path, route) == " ".join([*BIRD_LINE, "-R"])


def test_when_ip_cannot_tell_bird_recovers(tmp_path: Path) -> None:
    broken = tmp_path / "ip-broken"
    broken.write_text("#!/bin/sh\necho 'RTNETLINK answers: Operation not permitted' >&2\nexit 2\n")
    broken.chmod(0o755)
    assert run_in_fresh_netns(tmp_path, "", ip=str(broken)) == " ".join([*BIRD_LINE, "-R"])


def test_without_a_command_it_refuses(tmp_path: Path) -> None:
    script, _, record = start_script(tmp_path, "ip")
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False)
    assert result.returncode == 64 and "usage" in result.stderr
    assert not record.exists()

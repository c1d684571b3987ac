"""bird.service's ExecStop with graceful restart (modules/ibgp-tunnel/bird-stop.nix),
run by bash as systemd would run it: a restart job keeps BIRD's routes for the
`bird -R` that follows, anything else takes them out of the kernel. systemctl
and birdc are stand-ins that report a job and record what BIRD was told."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from nixcore import REPO, needs_nix, nix_eval

SCRIPT = REPO / "modules" / "ibgp-tunnel" / "bird-stop.nix"
UNIT = "bird.service"

pytestmark = needs_nix


def stop_script(tmp_path: Path, jobs: str, systemctl_status: int = 0) -> tuple[Path, Path]:
    record = tmp_path / "birdc-called-with"
    birdc = tmp_path / "birdc"
    birdc.write_text(f'#!/bin/sh\necho "$*" > {record}\n')
    systemctl = tmp_path / "systemctl"
    systemctl.write_text(
        "#!/bin/sh\n"
        f'[ "$1 $2 $3" = "list-jobs --no-legend {UNIT}" ] || exit 64\n'
        f"printf '%s' '{jobs}'\nexit {systemctl_status}\n"
    )
    for tool in (birdc, systemctl):
        tool.chmod(0o755)
    text = nix_eval(f'import {SCRIPT} {{ birdc = "{birdc}"; systemctl = "{systemctl}"; }}')
    script = tmp_path / "bird-stop"
    script.write_text(text)
    return script, record


def run_stop(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    bash = shutil.which("bash")
    assert bash
    return subprocess.run([bash, str(script), *args], capture_output=True, text=True, check=False)


@pytest.mark.parametrize("job", ["restart", "try-restart"])
def test_a_restart_keeps_the_routes(tmp_path: Path, job: str) -> None:
    script, record = stop_script(tmp_path, f"4711 {UNIT} {job} running\n")
    assert run_stop(script, UNIT).returncode == 0
    assert record.read_text() == "graceful restart\n"


@pytest.mark.parametrize(
    "jobs",
    [
        f"4711 {UNIT} stop running\n",  # systemctl stop, shutdown, a switch's stop phase
        "",  # no job at all
        f"12 other.service restart running\n4711 {UNIT} stop running\n",
        f"12 {UNIT}x restart running\n",  # a different unit whose name starts the same
    ],
)
def test_a_stop_takes_the_routes_out(tmp_path: Path, jobs: str) -> None:
    script, record = stop_script(tmp_path, jobs)
    assert run_stop(script, UNIT).returncode == 0
    assert record.read_text() == "down\n"


def test_when_systemctl_cannot_tell_bird_stops_cleanly(tmp_path: Path) -> None:
    script, record = stop_script(tmp_path, "", systemctl_status=1)
    assert run_stop(script, UNIT).returncode == 0
    assert record.read_text() == "down\n"


def test_the_unit_name_comes_from_systemd(tmp_path: Path) -> None:
    script, record = stop_script(tmp_path, f"4711 {UNIT} restart running\n")
    result = run_stop(script)
    assert result.returncode != 0 and "pass %n" in result.stderr
    assert not record.exists()

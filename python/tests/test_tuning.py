"""The [tuning] keys: one list in defaults.toml, the same in the plan model, and a
plan's overrides reach bird.conf through the Nix core."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from birdcheck import build_time_check
from cli_helpers import run
from nixcore import EXAMPLE_PLAN, needs_bird, needs_nix, render

from ibgp_tunnel.paths import defaults
from ibgp_tunnel.plan import Tuning


def test_plan_model_knows_exactly_the_default_tuning_keys() -> None:
    assert set(Tuning.model_fields) == set(defaults()["tuning"])


@needs_nix
@needs_bird
def test_plan_tuning_overrides_reach_bird_conf(tmp_path: Path) -> None:
    plan = tmp_path / "plan.toml"
    shutil.copyfile(EXAMPLE_PLAN, plan)  # writable, whatever the original's mode
    with plan.open("a") as handle:
        handle.write("\n[tuning]\nbfd = false\nimport_limit = 500\nerror_wait_time = [2, 4]\n")
    assert run("check", plan).exit_code == 0
    conf = render(plan, "pve")["birdConfig"]
    assert "protocol bfd" not in conf and "bfd on;" not in conf
    assert "import limit 500 action block;" in conf
    assert "error wait time 2, 4;" in conf
    assert "graceful restart on;" in conf
    (tmp_path / "bird.conf").write_text(conf)
    subprocess.run(["bird", "-p", "-c", str(tmp_path / "bird.conf")], check=True)


def test_a_bad_tuning_value_names_the_key(tmp_path: Path) -> None:
    plan = tmp_path / "plan.toml"
    shutil.copyfile(EXAMPLE_PLAN, plan)  # writable, whatever the original's mode
    with plan.open("a") as handle:
        handle.write('\n[tuning]\nimport_limit_action = "explode"\n')
    result = run("check", plan)
    assert result.exit_code == 1
    assert "tuning.import_limit_action" in result.output


def _kernel_blocks(conf: str) -> list[str]:
    return [part.split("\n}\n")[0] for part in conf.split("protocol kernel ")[1:]]


@needs_nix
@needs_bird
def test_bfd_down_starts_a_graceful_restart_and_the_kernel_keeps_its_routes(
    tmp_path: Path,
) -> None:
    """BIRD 2 lets a restarting neighbour's BFD session time out; with plain `bfd on`
    that resets the session and flushes the routes graceful restart should keep."""
    conf = render(EXAMPLE_PLAN, "pve")["birdConfig"]
    assert "bfd graceful;" in conf and "bfd on;" not in conf
    assert all("graceful restart on;" in block for block in _kernel_blocks(conf))
    assert "long lived graceful restart" not in conf  # would keep a dead tunnel's routes

    plan = tmp_path / "plan.toml"
    shutil.copyfile(EXAMPLE_PLAN, plan)  # writable, whatever the original's mode
    with plan.open("a") as handle:
        handle.write("\n[tuning]\ngraceful_restart = false\n")
    conf = render(plan, "pve")["birdConfig"]
    assert "bfd on;" in conf and "bfd graceful;" not in conf
    assert "graceful restart" not in conf


@needs_nix
@needs_bird
def test_plain_tuning_renders_the_seeds_sessions(tmp_path: Path) -> None:
    from ibgp_tunnel.render import render_host

    for host in ("dmz", "pve"):
        artifacts = render_host(EXAMPLE_PLAN, host, plain_tuning=True)
        conf = artifacts["birdConfig"]
        timers = ("connect delay", "connect retry", "error wait", "hold time", "keepalive")
        for absent in ("bfd", "graceful restart", "import limit", *timers):
            assert absent not in conf, (host, absent)
        # As the build-time check parses it (DN42 ROA includes stubbed).
        done = build_time_check(artifacts, tmp_path / host)
        assert done.returncode == 0, done.stderr

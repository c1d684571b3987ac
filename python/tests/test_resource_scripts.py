"""The shell functions the core's scripts share (modules/lib/resources/
bird-config-loads.sh): defined once, sourced by each script run from the tree
(the lab, the tests), and put in place of that line in the copy the core hands
to a unit (modules/lib/render/resource-script.nix), which has nothing beside it."""

from __future__ import annotations

import re
import subprocess

import pytest
from nixcore import CORE, EXAMPLE_ROA_FILES_PLAN, core_call, needs_nix, nix_eval_error, render

pytestmark = needs_nix

RESOURCES = CORE / "resources"
SHARED = RESOURCES / "bird-config-loads.sh"
USERS = ["dn42-roa-update.sh", "dn42-latency-update.sh"]
SOURCE_LINE = '. "$(dirname "${BASH_SOURCE[0]}")/bird-config-loads.sh" || exit 1\n'


def unit_copy(name: str) -> str:
    return core_call(f'core.resourceScript "{name}" [ "bird-config-loads.sh" ]')


def test_config_loads_is_defined_once_in_the_tree() -> None:
    defining = [
        path.name
        for path in sorted(RESOURCES.glob("*.sh"))
        if re.search(r"^config_loads\(\) \{", path.read_text(), re.MULTILINE)
    ]
    assert defining == [SHARED.name]
    for name in USERS:
        assert (RESOURCES / name).read_text().count(SOURCE_LINE) == 1, name


@pytest.mark.parametrize("name", USERS)
def test_the_units_copy_has_the_function_in_place_of_the_source_line(name: str) -> None:
    text = unit_copy(name)
    assert SOURCE_LINE not in text and 'bird-config-loads.sh")' not in text
    assert text == (RESOURCES / name).read_text().replace(SOURCE_LINE, SHARED.read_text())
    # Still one bash program: it parses, and defines the function once.
    assert subprocess.run(["bash", "-n"], input=text, text=True, check=False).returncode == 0
    assert text.count("config_loads() {") == 1


def test_the_rendered_units_carry_the_unit_copies() -> None:
    artifacts = render(EXAMPLE_ROA_FILES_PLAN, "dmz")  # the ROA files' unit
    assert artifacts["dn42Roa"]["script"] == unit_copy("dn42-roa-update.sh")


def test_a_script_that_does_not_source_what_it_names_is_an_error() -> None:
    error = nix_eval_error(
        f'(import {CORE}).resourceScript "dn42-rtr-update.sh" [ "bird-config-loads.sh" ]'
    )
    assert "dn42-rtr-update.sh does not source bird-config-loads.sh" in error
    assert "is not a script" in nix_eval_error(
        f'(import {CORE}).resourceScript "../../etc/passwd" [ ]'
    )

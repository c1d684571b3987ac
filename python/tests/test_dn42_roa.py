"""The DN42 ROA refresh (modules/lib/resources/dn42-roa-update.sh) run for real:
bash, curl on file:// URLs, a running BIRD (in a network namespace of its own,
with no kernel protocol) reconfigured through its socket. A download that
fails or brings garbage keeps the last good file and BIRD's tables; an
unchanged file does not reload BIRD; a changed one does."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RESOURCES = REPO / "modules" / "lib" / "resources"
SCRIPT = RESOURCES / "dn42-roa-update.sh"


def _birds() -> list[tuple[str, Path]]:
    """BIRD 3 first, then BIRD 2 (scripts/setup's copies), then the system's."""
    found = []
    for name in ("bird3", "bird2"):
        directory = REPO / ".cache" / "bird" / name / "bin"
        if (directory / "bird").exists():
            found.append((name, directory))
    system = shutil.which("bird")
    if system:
        found.append(("system", Path(system).parent))
    return found


BIRDS = _birds()
pytestmark = [
    pytest.mark.skipif(not BIRDS, reason="no BIRD installed (scripts/setup installs it)"),
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl missing"),
    pytest.mark.skipif(os.geteuid() != 0, reason="BIRD runs in a network namespace: needs root"),
]

V4_OK = "route 172.21.80.0/24 max 24 as 4242421080;\n"
V4_MORE = V4_OK + "route 172.21.81.0/24 max 24 as 4242421081;\n"
V6_OK = "route fd42:4200::/48 max 64 as 4242421080;\n"


class Roa:
    def __init__(self, tmp: Path, bird_dir: Path) -> None:
        self.tmp = tmp
        self.bird_dir = bird_dir
        self.source = tmp / "served"
        self.source.mkdir()
        self.installed = tmp / "var" / "roa"
        self.file4 = self.installed / "dn42_roa4.conf"
        self.file6 = self.installed / "dn42_roa6.conf"
        self.socket = tmp / "bird.ctl"
        self.conf = tmp / "bird.conf"
        self.proc: subprocess.Popen[bytes] | None = None

    def serve(self, v4: str | None, v6: str | None) -> None:
        for name, text in (("roa4.conf", v4), ("roa6.conf", v6)):
            path = self.source / name
            if text is None:
                path.unlink(missing_ok=True)
            else:
                path.write_text(text)

    def start_bird(self) -> None:
        # What bird.conf holds on a reflector: the resource verbatim, then the
        # generated statics including the files (empty before the first run,
        # as tmpfiles leaves them).
        self.installed.mkdir(parents=True)
        self.file4.write_text("")
        self.file6.write_text("")
        conf = self.conf
        conf.write_text(
            "router id 192.0.2.1;\n"
            + (RESOURCES / "dn42-roa.conf").read_text()
            + "".join(
                # BIRD takes `include` only at the start of a line.
                f"protocol static dn42_roa{v}_file {{\n  roa{v} {{ table dn42_roa{v}; }};\n"
                f'  include "{path}";\n}}\n'
                for v, path in (("4", self.file4), ("6", self.file6))
            )
        )
        self.proc = subprocess.Popen(
            [
                "unshare",
                "--net",
                str(self.bird_dir / "bird"),
                "-f",
                "-c",
                str(conf),
                "-s",
                str(self.socket),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not self._answers():
            assert self.proc.poll() is None, "BIRD exited at start"
            assert time.monotonic() < deadline, "BIRD never answered on its socket"
            time.sleep(0.05)

    def _answers(self) -> bool:
        birdc = [str(self.bird_dir / "birdc"), "-s", str(self.socket), "show", "status"]
        return subprocess.run(birdc, capture_output=True, check=False).returncode == 0

    def run(
        self, *flags: str, urls: tuple[str, str] | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """The script as the unit runs it: this BIRD, its bird.conf, the two files."""
        url4, url6 = urls or (
            f"file://{self.source / 'roa4.conf'}",
            f"file://{self.source / 'roa6.conf'}",
        )
        environment = {
            **os.environ,
            "BIRD": str(self.bird_dir / "bird"),
            "BIRDC": str(self.bird_dir / "birdc"),
            "BIRDC_SOCKET": str(self.socket),
            "BIRD_CONF": str(self.conf),
            **env,
        }
        args = [
            *flags,
            "ipv4", url4, str(self.file4), "dn42_roa4",
            "ipv6", url6, str(self.file6), "dn42_roa6",
        ]  # fmt: skip
        return subprocess.run(
            ["bash", str(SCRIPT), *args],
            capture_output=True,
            text=True,
            errors="replace",
            env=environment,
            check=False,
        )

    def table(self, name: str) -> str:
        out = subprocess.run(
            [str(self.bird_dir / "birdc"), "-s", str(self.socket), "show", "route", "table", name],
            capture_output=True,
            text=True,
            check=False,  # birdc exits 1 on an empty table
        ).stdout
        return out

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture(params=BIRDS, ids=[name for name, _ in BIRDS])
def roa(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Roa]:
    _, bird_dir = request.param
    r = Roa(tmp_path, bird_dir)
    r.start_bird()
    try:
        yield r
    finally:
        r.stop()


def _wait_for(check, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 5
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_first_download_installs_and_reloads(roa: Roa) -> None:
    assert "172.21.80.0/24" not in roa.table("dn42_roa4")
    roa.serve(V4_OK, V6_OK)
    result = roa.run()
    assert result.returncode == 0, result.stderr
    assert "BIRD reconfigured" in result.stdout
    assert roa.file4.read_text() == V4_OK and roa.file6.read_text() == V6_OK
    _wait_for(lambda: "172.21.80.0/24" in roa.table("dn42_roa4"), "ROA not loaded")
    assert "fd42:4200::/48" in roa.table("dn42_roa6")
    # No temporary file is left beside the installed ones.
    assert sorted(p.name for p in roa.installed.iterdir()) == ["dn42_roa4.conf", "dn42_roa6.conf"]


def test_unchanged_files_do_not_reload(roa: Roa) -> None:
    roa.serve(V4_OK, V6_OK)
    assert roa.run().returncode == 0
    before = roa.file4.stat().st_mtime_ns
    again = roa.run()
    assert again.returncode == 0, again.stderr
    assert "reconfigured" not in again.stdout and "updated" not in again.stdout
    assert roa.file4.stat().st_mtime_ns == before


def test_failed_download_keeps_the_last_good_file_and_bird(roa: Roa) -> None:
    roa.serve(V4_OK, V6_OK)
    assert roa.run().returncode == 0
    roa.serve(None, V6_OK)  # the IPv4 URL now fails
    result = roa.run()
    assert result.returncode == 1
    assert "keeping" in result.stderr
    assert roa.file4.read_text() == V4_OK
    assert roa.alive()
    assert "172.21.80.0/24" in roa.table("dn42_roa4")


def test_garbage_is_refused_and_the_last_good_file_kept(roa: Roa) -> None:
    roa.serve(V4_OK, V6_OK)
    assert roa.run().returncode == 0
    roa.serve("<html>rate limited</html>\n", "")  # not BIRD syntax; empty
    result = roa.run()
    assert result.returncode == 1
    assert "not a BIRD ipv4 ROA file" in result.stderr
    assert "not a BIRD ipv6 ROA file" in result.stderr
    assert roa.file4.read_text() == V4_OK and roa.file6.read_text() == V6_OK
    assert "reconfigured" not in result.stdout
    assert roa.alive()


def test_a_changed_file_is_installed_and_loaded(roa: Roa) -> None:
    roa.serve(V4_OK, V6_OK)
    assert roa.run().returncode == 0
    roa.serve(V4_MORE, V6_OK)
    result = roa.run()
    assert result.returncode == 0, result.stderr
    assert f"{roa.file4} updated" in result.stdout and f"{roa.file6} updated" not in result.stdout
    _wait_for(lambda: "172.21.81.0/24" in roa.table("dn42_roa4"), "new ROA not loaded")

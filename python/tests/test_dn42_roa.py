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

    def start_bird(self, *, write_config: bool = True) -> None:
        """BIRD on self.conf: by default what bird.conf holds on a reflector (the
        resource verbatim, then the generated statics including the files, empty
        before the first run as tmpfiles leaves them); else the caller's."""
        if write_config:
            self._write_config()
        self._start()

    def _write_config(self) -> None:
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

    def _start(self) -> None:
        conf = self.conf
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


def _entries(count: int) -> str:
    return "".join(
        f"route 172.22.{i // 256}.{i % 256}/32 max 32 as 4242420000;\n" for i in range(count)
    )


def test_a_file_bird_refuses_in_the_real_config_is_not_installed(roa: Roa) -> None:
    roa.serve(V4_OK, V6_OK)
    assert roa.run().returncode == 0
    # Grammatical, but host bits are set: only BIRD, reading the real bird.conf
    # with the file in place, refuses it.
    roa.serve("route 172.21.80.1/24 max 24 as 4242421080;\n", V6_OK)
    result = roa.run()
    assert result.returncode == 1
    assert "would not load with the download" in result.stderr
    assert "Invalid IPv4 prefix" in result.stderr
    assert roa.file4.read_text() == V4_OK
    assert "reconfigured" not in result.stdout


def test_a_config_that_does_not_include_the_file_installs_nothing(roa: Roa, tmp_path: Path) -> None:
    roa.serve(V4_OK, V6_OK)
    other = tmp_path / "other.conf"
    other.write_text("router id 192.0.2.1;\nprotocol device {}\n")
    result = roa.run(BIRD_CONF=str(other))
    assert result.returncode == 1
    assert f"does not include {roa.file4}" in result.stderr
    assert roa.file4.read_text() == "" and roa.file6.read_text() == ""


def test_birdc_configure_failing_rolls_back_to_the_files_bird_ran(roa: Roa, tmp_path: Path) -> None:
    roa.serve(V4_OK, V6_OK)
    assert roa.run().returncode == 0
    _wait_for(lambda: "172.21.80.0/24" in roa.table("dn42_roa4"), "ROA not loaded")
    # BIRD refuses the first `configure` after this (a birdc in front of the real
    # one answers for it); the second, the rollback's, goes through.
    once = tmp_path / "refused-once"
    birdc = tmp_path / "birdc"
    birdc.write_text(
        "#!/bin/bash\n"
        f'if [ "${{@: -1}}" = configure ] && [ ! -e {once} ]; then\n'
        f"  touch {once}; echo 'bird.conf:12:3 syntax error'; exit 1\n"
        "fi\n"
        f'exec {roa.bird_dir / "birdc"} "$@"\n'
    )
    birdc.chmod(0o755)
    roa.serve(V4_MORE, V6_OK)
    result = roa.run(BIRDC=str(birdc))
    assert result.returncode == 1
    assert "birdc configure failed" in result.stderr
    assert f"{roa.file4} rolled back" in result.stderr
    assert roa.file4.read_text() == V4_OK
    assert sorted(p.name for p in roa.installed.iterdir()) == ["dn42_roa4.conf", "dn42_roa6.conf"]
    assert "172.21.81.0/24" not in roa.table("dn42_roa4")
    assert "172.21.80.0/24" in roa.table("dn42_roa4")
    # The next run installs it (BIRD takes it now).
    again = roa.run(BIRDC=str(birdc))
    assert again.returncode == 0, again.stderr
    _wait_for(lambda: "172.21.81.0/24" in roa.table("dn42_roa4"), "new ROA not loaded")


def test_an_injected_file_installed_before_is_replaced_by_an_empty_one(roa: Roa) -> None:
    # What the old check let through, installed and loaded: BIRD runs its protocol.
    roa.file4.write_text(
        V4_OK + "}\nprotocol static evil4 {\n  ipv4;\n  route 0.0.0.0/0 unreachable;\n}\n"
        "protocol static evil_tail {\n  roa4 { table dn42_roa4; };\n"
    )
    birdc = [str(roa.bird_dir / "birdc"), "-s", str(roa.socket)]
    assert (
        "Reconfigured"
        in subprocess.run([*birdc, "configure"], capture_output=True, text=True).stdout
    )
    _wait_for(lambda: "0.0.0.0/0" in roa.table("master4"), "the injected route is not there")
    # The download fails: the installed file is not data, so it goes.
    roa.serve(None, V6_OK)
    result = roa.run()
    assert result.returncode == 1
    assert "replacing it by an empty one" in result.stderr
    assert roa.file4.read_text() == ""
    _wait_for(lambda: "0.0.0.0/0" not in roa.table("master4"), "the injected route stayed")
    assert (
        "evil4"
        not in subprocess.run([*birdc, "show", "protocols"], capture_output=True, text=True).stdout
    )
    # A good download then replaces the empty file.
    roa.serve(V4_OK, V6_OK)
    assert roa.run().returncode == 0
    assert roa.file4.read_text() == V4_OK


def test_plain_http_is_fetched_only_when_allowed(roa: Roa) -> None:
    roa.serve(V4_OK, V6_OK)
    urls = ("http://127.0.0.1:9/roa4.conf", f"file://{roa.source / 'roa6.conf'}")
    refused = roa.run(urls=urls)
    assert refused.returncode == 1
    assert "only https:// and file:// URLs are fetched" in refused.stderr
    assert "downloading" not in refused.stderr
    assert roa.file4.read_text() == "" and roa.file6.read_text() == V6_OK
    # Opted in (dn42.roa.allowInsecureUrls): curl tries it (nothing listens there).
    tried = roa.run("--allow-http", urls=urls)
    assert tried.returncode == 1
    assert "downloading http://127.0.0.1:9/roa4.conf failed" in tried.stderr


def test_a_download_over_the_size_cap_is_refused(roa: Roa) -> None:
    roa.serve(V4_OK, V6_OK)
    assert roa.run().returncode == 0
    big = _entries(200)
    assert len(big) > 4096
    roa.serve(big, V6_OK)
    result = roa.run(ROA_MAX_BYTES="4096")
    assert result.returncode == 1
    assert "keeping" in result.stderr
    assert roa.file4.read_text() == V4_OK
    # Under the cap, the same file goes in.
    assert roa.run(ROA_MAX_BYTES=str(len(big))).returncode == 0
    assert roa.file4.read_text() == big


def test_with_bird_down_the_checked_file_is_installed_for_its_start(roa: Roa) -> None:
    roa.stop()
    roa.serve(V4_OK, V6_OK)
    result = roa.run()
    assert result.returncode == 1
    assert "BIRD does not answer" in result.stderr
    assert roa.file4.read_text() == V4_OK
    assert sorted(p.name for p in roa.installed.iterdir()) == ["dn42_roa4.conf", "dn42_roa6.conf"]


HIJACK_V4 = "172.21.99.0/24"
JUDGED = f"""
# A route judged by the ROA table on import, as a BGP channel judges the peer's;
# no automatic RPKI reload: only the script's reload re-judges it.
protocol static judged4 {{
  ipv4 {{ import where roa_check(dn42_roa4, net, 4242421080) = ROA_VALID; rpki reload off; }};
  route {HIJACK_V4} blackhole;
}}
"""


def test_a_refresh_that_keeps_the_count_reloads_by_the_new_entries(
    roa: Roa, tmp_path: Path
) -> None:
    roa.conf.write_text(roa.conf.read_text() + JUDGED)
    real = roa.bird_dir / "birdc"
    out = subprocess.run([str(real), "-s", str(roa.socket), "configure"], capture_output=True)
    assert b"Reconfigur" in out.stdout, out
    roa.serve(f"route {HIJACK_V4} max 24 as 4242429999;\n", V6_OK)
    assert roa.run().returncode == 0
    _wait_for(lambda: "4242429999" in roa.table("dn42_roa4"), "the other AS's entry not loaded")
    assert HIJACK_V4 not in roa.table("master4")
    # BIRD applies this configure a second after answering (BIRD 3 reconfigures in
    # other threads after `configure` returns); the file keeps its one entry, so its
    # count matches the old table at once. The reload must wait for the new entry.
    birdc = tmp_path / "birdc"
    birdc.write_text(
        "#!/bin/bash\n"
        'if [ "${@: -1}" = configure ]; then\n'
        f'  (sleep 1; exec {real} "$@") >/dev/null 2>&1 &\n'
        "  echo 'Reconfiguration in progress'; exit 0\n"
        "fi\n"
        f'exec {real} "$@"\n'
    )
    birdc.chmod(0o755)
    roa.serve(f"route {HIJACK_V4} max 24 as 4242421080;\n", V6_OK)
    result = roa.run(BIRDC=str(birdc))
    assert result.returncode == 0, result.stderr
    assert "does not judge by the new ROA entries" not in result.stderr
    _wait_for(lambda: HIJACK_V4 in roa.table("master4"), "the route stays refused")

"""The ROA refresh's size cap (ROA_MAX_BYTES), run for real as the NixOS unit
runs it: not root (here the unprivileged `nobody`), real curl against a local
HTTP server on loopback (with and without a Content-Length) and a file:// URL,
real BIRD parsing what passes. A download one byte over the cap is refused
and the last good file kept; one exactly at the cap is accepted."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from test_dn42_roa import BIRDS, SCRIPT

NOBODY = 65534
pytestmark = [
    pytest.mark.skipif(not BIRDS, reason="no BIRD installed (scripts/setup installs it)"),
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl missing"),
    pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) missing"),
    pytest.mark.skipif(os.geteuid() != 0, reason="switching to an unprivileged user needs root"),
]

ROUTE = "route 172.21.80.0/24 max 24 as 4242421080;\n"


def roa_text(size: int) -> str:
    """A valid BIRD ROA include of exactly `size` bytes (a route, then comments)."""
    text = ROUTE
    while len(text) < size:
        text += "#" + "x" * min(70, size - len(text) - 2) + "\n"
    assert len(text) == size
    return text


@dataclass
class Site:
    root: Path  # the served files, and the installed one, owned by nobody
    installed: Path
    http: str  # base URL of a server that sends Content-Length
    unsized: str  # base URL of one that does not (HTTP/1.0, close-delimited)


def _unsized_handler(root: Path) -> type[BaseHTTPRequestHandler]:
    class Unsized(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_GET(self) -> None:
            body = (root / self.path.lstrip("/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    return Unsized


def _quiet_files(root: Path) -> type[SimpleHTTPRequestHandler]:
    class Files(SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

        def log_message(self, *_: object) -> None:
            pass

    return Files


@pytest.fixture
def site() -> Iterator[Site]:
    # Not pytest's tmp_path: its parents are root-only, and nobody must reach it.
    root = Path(tempfile.mkdtemp(prefix="ibgp-roa-cap-"))
    root.chmod(0o755)
    installed = root / "var"
    installed.mkdir()
    os.chown(installed, NOBODY, NOBODY)
    servers = [
        ThreadingHTTPServer(("127.0.0.1", 0), _quiet_files(root / "served")),
        ThreadingHTTPServer(("127.0.0.1", 0), _unsized_handler(root / "served")),
    ]
    (root / "served").mkdir()
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield Site(
            root,
            installed,
            f"http://127.0.0.1:{servers[0].server_address[1]}",
            f"http://127.0.0.1:{servers[1].server_address[1]}",
        )
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
        shutil.rmtree(root)


def refresh(site: Site, url: str, cap: int) -> subprocess.CompletedProcess[str]:
    """The script as the unit runs it, but as nobody with no groups."""
    _, bird_dir = BIRDS[0]
    return subprocess.run(
        [
            "setpriv",
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            "env",
            f"ROA_MAX_BYTES={cap}",
            f"BIRD={bird_dir / 'bird'}",
            f"BIRDC={bird_dir / 'birdc'}",
            f"BIRD_CONF={bird_conf(site)}",
            "bash",
            str(SCRIPT),
            "--allow-http",
            "ipv4",
            url,
            str(site.installed / "dn42_roa4.conf"),
            "dn42_roa4",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def bird_conf(site: Site) -> Path:
    """The smallest config that includes the ROA file as bird.conf does: the
    script checks every download inside the config BIRD runs."""
    conf = site.root / "bird.conf"
    conf.write_text(
        "router id 192.0.2.1;\nroa4 table dn42_roa4;\n"
        "protocol static dn42_roa4_file {\n  roa4 { table dn42_roa4; };\n"
        f'  include "{site.installed / "dn42_roa4.conf"}";\n}}\n'
    )
    conf.chmod(0o644)
    return conf


def install(site: Site, text: str) -> Path:
    file = site.installed / "dn42_roa4.conf"
    file.write_text(text)
    os.chown(file, NOBODY, NOBODY)
    return file


def serve(site: Site, text: str) -> None:
    (site.root / "served" / "roa4.conf").write_text(text)


def leftovers(site: Site) -> list[str]:
    return sorted(p.name for p in site.installed.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("kind", ["http", "unsized", "file"])
def test_a_download_over_the_cap_is_refused_and_the_last_good_file_kept(
    site: Site, kind: str
) -> None:
    good = install(site, ROUTE)
    big = roa_text(4096)
    serve(site, big)
    url = {
        "http": f"{site.http}/roa4.conf",
        "unsized": f"{site.unsized}/roa4.conf",
        "file": f"file://{site.root}/served/roa4.conf",
    }[kind]
    done = refresh(site, url, len(big) - 1)
    assert done.returncode == 1, done.stderr
    assert f"is larger than {len(big) - 1} bytes (ROA_MAX_BYTES)\ndn42-roa: keeping" in done.stderr
    assert good.read_text() == ROUTE
    assert leftovers(site) == []


@pytest.mark.parametrize("kind", ["http", "unsized"])
def test_a_file_exactly_at_the_cap_is_accepted(site: Site, kind: str) -> None:
    # Same content as installed: BIRD parses it (as nobody) and nothing changes,
    # so no reload is needed and the run succeeds.
    text = roa_text(4096)
    good = install(site, text)
    serve(site, text)
    base = site.http if kind == "http" else site.unsized
    done = refresh(site, f"{base}/roa4.conf", len(text))
    assert done.returncode == 0, done.stderr
    assert good.read_text() == text
    assert leftovers(site) == []


def test_a_cap_that_is_not_a_number_is_refused(site: Site) -> None:
    install(site, ROUTE)
    serve(site, ROUTE)
    done = refresh(site, f"{site.http}/roa4.conf", 0)
    assert done.returncode == 1  # a cap of 0 refuses everything
    bad = subprocess.run(
        ["bash", str(SCRIPT), "ipv4", f"{site.http}/roa4.conf", str(site.installed / "x"), "t"],
        env={**os.environ, "ROA_MAX_BYTES": "8M"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert "ROA_MAX_BYTES must be a number of bytes, not '8M'" in bad.stderr


def test_the_scripts_default_cap_is_the_cores() -> None:
    import tomllib

    defaults = tomllib.loads((SCRIPT.parents[1] / "base" / "dn42-defaults.toml").read_text())
    assert f"max_bytes=${{ROA_MAX_BYTES:-{defaults['roa_max_bytes']}}}" in SCRIPT.read_text()

"""The registry refresh with real git against a local repository (file://):
a fresh checkout made current with one rename, nothing changed when the
commit did not, a failed or incomplete fetch keeps the old copy, symlinks in
the repository arrive as plain files, and only https:// and file:// URLs are
ever handed to git."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from autopeer_signers import ASN, FIXTURE

from ibgp_tunnel.autopeer.registry import aut_num, mntner, scan_registry
from ibgp_tunnel.autopeer.registry_refresh import check_url, refresh_registry, refresh_summary
from ibgp_tunnel.errors import InputError

GIT = [
    "git",
    "-c",
    "user.name=test",
    "-c",
    "user.email=test@example.invalid",
    "-c",
    "init.defaultBranch=master",
]


def commit(repo: Path, message: str) -> str:
    subprocess.run([*GIT, "-C", str(repo), "add", "-A"], check=True)
    subprocess.run([*GIT, "-C", str(repo), "commit", "-q", "-m", message], check=True)
    done = subprocess.run(
        [*GIT, "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    return done.stdout.strip()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    repo = tmp_path / "source"
    shutil.copytree(FIXTURE / "data", repo / "data")
    (repo / "README.md").write_text("a registry\n")
    subprocess.run([*GIT, "init", "-q", str(repo)], check=True)
    commit(repo, "registry")
    return repo


def test_a_refresh_checks_out_the_objects_and_swaps_atomically(
    tmp_path: Path, source: Path
) -> None:
    link = tmp_path / "state" / "registry"
    first = refresh_registry(f"file://{source}", link)
    assert first.changed and link.is_symlink() and link.resolve() == first.path
    assert first.path.name.startswith(first.commit) and first.scan.objects == {
        "aut-num": 5,
        "mntner": 3,
    }
    assert aut_num(link, ASN).mnt_by[-1] == "TEST-AUTOPEER-MNT"
    assert not (first.path / "README.md").exists()  # only the objects autopeer reads
    # nothing new upstream: nothing changes
    same = refresh_registry(f"file://{source}", link)
    assert not same.changed and same.path == first.path
    assert refresh_summary(same).startswith(f"registry already at {first.commit[:12]}")
    # a maintainer changed upstream arrives with the next refresh
    assert mntner(link, "TEST-OTHER-MNT").auths
    (source / "data" / "mntner" / "TEST-OTHER-MNT").write_text("mntner: TEST-OTHER-MNT\n")
    commit(source, "TEST-OTHER-MNT drops its keys")
    second = refresh_registry(f"file://{source}", link)
    assert (
        second.changed
        and link.resolve() == second.path
        and not mntner(link, "TEST-OTHER-MNT").auths
    )
    # the copy before stays (a reader may still be in it), older ones go
    (source / "README.md").write_text("again\n")
    commit(source, "again")
    third = refresh_registry(f"file://{source}", link)
    assert third.changed and link.resolve() == third.path
    assert second.path.exists() and not first.path.exists()


def test_a_symlink_in_the_repository_arrives_as_a_plain_file(tmp_path: Path, source: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("mntner: EVIL-MNT\nauth: pgp-fingerprint " + "A" * 40 + "\n")
    (source / "data" / "mntner" / "EVIL-MNT").symlink_to(secret)
    commit(source, "a symlink out")
    link = tmp_path / "state" / "registry"
    done = refresh_registry(f"file://{source}", link)
    evil = done.path / "data" / "mntner" / "EVIL-MNT"
    assert not evil.is_symlink() and evil.read_text() == str(secret)
    assert done.scan.skipped == {"mntner not one `mntner:` name": 1}


def test_a_failed_or_incomplete_fetch_keeps_the_current_copy(tmp_path: Path, source: Path) -> None:
    link = tmp_path / "state" / "registry"
    good = refresh_registry(f"file://{source}", link)
    with pytest.raises(InputError, match="git fetch"):
        refresh_registry(f"file://{tmp_path}/missing", link)
    shutil.rmtree(source / "data" / "mntner")
    commit(source, "no maintainers")
    with pytest.raises(InputError, match="no data/mntner"):
        refresh_registry(f"file://{source}", link)
    assert link.resolve() == good.path and scan_registry(link).objects["mntner"] == 3


def test_a_directory_in_place_of_the_link_is_moved_aside(tmp_path: Path, source: Path) -> None:
    link = tmp_path / "state" / "registry"
    shutil.copytree(FIXTURE / "data", link / "data")
    done = refresh_registry(f"file://{source}", link)
    assert link.is_symlink() and link.resolve() == done.path


@pytest.mark.parametrize(
    "url",
    [
        "ext::sh -c touch% /tmp/autopeer-pwned",
        "ext::sh",
        "ssh://git@git.dn42.dev/dn42/registry.git",
        "git@git.dn42.dev:dn42/registry.git",
        "git://git.dn42.dev/dn42/registry.git",
        "http://git.dn42.dev/dn42/registry.git",
        "-uhttps://git.dn42.dev/x",
        "--upload-pack=touch /tmp/autopeer-pwned",
        "https://git.dn42.dev/dn42/registry.git --upload-pack=x",
        "https://git.dn42.dev/dn42/registry.git\n",
        "https://user:pass@git.dn42.dev/x",
        "file://../x",
        "file:///srv/../etc",
        "/srv/registry",
        "",
    ],
)
def test_only_https_and_file_urls_reach_git(tmp_path: Path, url: str) -> None:
    with pytest.raises(InputError, match=r"autopeer\.registry_url"):
        refresh_registry(url, tmp_path / "registry")
    assert not (tmp_path / "registry.git").exists() and not Path("/tmp/autopeer-pwned").exists()


def test_the_dn42_url_is_accepted() -> None:
    assert check_url("https://git.dn42.dev/dn42/registry.git")
    assert check_url("https://git.dn42.dev:443/dn42/registry.git")

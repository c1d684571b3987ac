"""The verified flake-input cache (ibgp_tunnel.flake_inputs): a tree enters it
only when its NAR hash is the pinned one, from any of the three forms a
developer may hold (tarball, unpacked tree, git directory), and a copy altered
afterwards is refused on read. Sources are the real pinned inputs, taken from
the real cache; every hash is computed by Nix itself."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pinned
import pytest
from cli_helpers import run

from ibgp_tunnel import flake_inputs
from ibgp_tunnel.errors import InputError

pytestmark = pinned.needs_inputs
REPO = pinned.REPO
SOPS_TREE = pinned.SOPS_NIX


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "cache"
    monkeypatch.setenv(flake_inputs.CACHE_ENV, str(directory))
    flake_inputs.verified_tree.cache_clear()
    yield directory
    flake_inputs.verified_tree.cache_clear()


def writable_copy(tree: Path, into: Path) -> Path:
    shutil.copytree(tree, into, symlinks=True)
    for path in [into, *into.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o200)
    return into


def github_tarball(tree: Path, into: Path, top: str) -> Path:
    with tarfile.open(into, "w:gz") as archive:
        archive.add(tree, arcname=top)
    return into


def test_a_github_tarball_enters_the_cache_read_only_and_verifies(
    cache: Path, tmp_path: Path
) -> None:
    pin = flake_inputs.pin_named(REPO, "sops-nix")
    tarball = github_tarball(SOPS_TREE, tmp_path / "sops.tar.gz", f"sops-nix-{pin.rev}")
    added_pin, added = flake_inputs.add(REPO, "sops-nix", tarball)
    assert added and added_pin.rev == pin.rev
    tree = flake_inputs.verified_tree(REPO, "sops-nix")
    assert tree == cache / "sops-nix" / pin.rev
    assert flake_inputs.nar_hash(tree) == pin.nar_hash
    assert not (tree / "modules" / "sops" / "default.nix").stat().st_mode & 0o222
    # Nothing of the staging is left beside it.
    assert [p.name for p in (cache / "sops-nix").iterdir()] == [pin.rev]
    assert flake_inputs.add(REPO, "sops-nix", tarball)[1] is False


def test_an_unpacked_tree_is_accepted(cache: Path, tmp_path: Path) -> None:
    source = writable_copy(pinned.NIXPKGS_LIB.parent, tmp_path / "lib")
    assert flake_inputs.add(REPO, "nixpkgs-lib", source)[1] is True
    assert flake_inputs.verified_tree(REPO, "nixpkgs-lib").name == (
        flake_inputs.pin_named(REPO, "nixpkgs-lib").rev
    )


def git(*args: str | Path) -> str:
    command = ["git", "-c", "user.name=t", "-c", "user.email=t@t", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


def test_a_git_directory_gives_the_pinned_revision_or_says_to_fetch_it(
    cache: Path, tmp_path: Path
) -> None:
    work = writable_copy(SOPS_TREE, tmp_path / "work")
    git("init", "-q", work)
    git("-C", work, "add", "-A")
    git("-C", work, "commit", "-qm", "the pinned tree, committed locally")
    local_rev = git("-C", work, "rev-parse", "HEAD")
    bare = tmp_path / "bare.git"
    git("clone", "-q", "--bare", work, bare)
    # A local commit of the pinned tree has its own id: the pinned one is not in it.
    with pytest.raises(InputError, match=r"fetch revision 56b24064.* into"):
        flake_inputs.add(REPO, "sops-nix", bare)
    # Both a bare directory and a work tree's .git give that commit's tree exactly.
    for source, into in ((bare, tmp_path / "a"), (work, tmp_path / "b")):
        into.parent.mkdir(exist_ok=True)
        flake_inputs._materialise(source, local_rev, into)
        assert flake_inputs.nar_hash(into) == flake_inputs.pin_named(REPO, "sops-nix").nar_hash


def test_a_tree_with_one_changed_byte_is_refused_with_both_hashes(
    cache: Path, tmp_path: Path
) -> None:
    tree = writable_copy(SOPS_TREE, tmp_path / "sops")
    module = tree / "modules" / "sops" / "default.nix"
    module.write_text(module.read_text() + " ")
    pin = flake_inputs.pin_named(REPO, "sops-nix")
    with pytest.raises(flake_inputs.InputMismatch) as caught:
        flake_inputs.add(REPO, "sops-nix", tree)
    message = str(caught.value)
    assert pin.nar_hash in message
    assert flake_inputs.nar_hash(tree) in message
    assert pin.tarball_url in message
    assert not (cache / "sops-nix" / pin.rev).exists()
    assert list((cache / "sops-nix").iterdir()) == []


def test_a_cached_copy_altered_later_is_refused_on_read_and_replaced_by_add(
    cache: Path, tmp_path: Path
) -> None:
    flake_inputs.add(REPO, "sops-nix", SOPS_TREE)
    tree = flake_inputs.verified_tree(REPO, "sops-nix")
    planted = tree / "modules" / "sops" / "planted.nix"
    tree.joinpath("modules", "sops").chmod(0o755)
    planted.write_text("{ }")
    flake_inputs.verified_tree.cache_clear()
    with pytest.raises(InputError, match=r"run `scripts/flake-inputs add sops-nix PATH` again"):
        flake_inputs.verified_tree(REPO, "sops-nix")
    assert flake_inputs.add(REPO, "sops-nix", SOPS_TREE)[1] is True
    assert not planted.exists()
    assert flake_inputs.verified_tree(REPO, "sops-nix") == tree


def test_a_missing_input_names_the_command_and_where_to_get_it(cache: Path) -> None:
    with pytest.raises(InputError) as caught:
        flake_inputs.verified_tree(REPO, "nixpkgs-lib")
    assert "run `scripts/flake-inputs add nixpkgs-lib PATH`" in str(caught.value)
    assert "github.com/nix-community/nixpkgs.lib/archive/de42d442" in str(caught.value)


def test_a_tarball_reaching_outside_its_tree_is_refused(cache: Path, tmp_path: Path) -> None:
    tarball = tmp_path / "evil.tar"
    with tarfile.open(tarball, "w") as archive:
        data = b"owned"
        member = tarfile.TarInfo("../../outside.txt")
        member.size = len(data)
        archive.addfile(member, io.BytesIO(data))
    with pytest.raises(InputError, match="give a readable tarball"):
        flake_inputs.add(REPO, "sops-nix", tarball)
    assert not (tmp_path / "outside.txt").exists()
    assert not (cache / "outside.txt").exists()


def test_pins_follow_flake_lock_and_refuse_a_stale_nixpkgs_lib_record(tmp_path: Path) -> None:
    lock = json.loads((REPO / "flake.lock").read_text())
    pins = flake_inputs.pins(REPO)
    assert pins["sops-nix"].nar_hash == lock["nodes"]["sops-nix"]["locked"]["narHash"]
    assert pins["sops-nix"].rev == lock["nodes"]["sops-nix"]["locked"]["rev"]
    project = tmp_path / "project"
    (project / "checks").mkdir(parents=True)
    lock["nodes"]["nixpkgs"]["locked"]["rev"] = "0" * 40
    (project / "flake.lock").write_text(json.dumps(lock))
    shutil.copy(REPO / flake_inputs.PINS_FILE, project / flake_inputs.PINS_FILE)
    with pytest.raises(InputError, match=r"update checks/pinned-inputs.toml's \[nixpkgs-lib\]"):
        flake_inputs.pins(project)


def test_cli_add_refuses_the_wrong_input_with_exit_2_and_list_reports(cache: Path) -> None:
    project = ("--project", str(REPO))
    wrong = run("flake-inputs", "add", "sops-nix", pinned.NIXPKGS_LIB.parent, *project)
    assert wrong.exit_code == 2, wrong.output
    assert "has no modules/sops/default.nix" in wrong.output
    listed = run("flake-inputs", "list", "--json", *project)
    assert listed.exit_code == 1
    assert {row["name"]: row["state"] for row in json.loads(listed.stdout)} == {
        "nixpkgs-lib": "missing",
        "sops-nix": "missing",
    }
    assert run("flake-inputs", "add", "sops-nix", SOPS_TREE, *project).exit_code == 0

"""Finding the Nix core and its shared defaults."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ibgp_tunnel import paths
from ibgp_tunnel.errors import InputError


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    paths.nix_lib_dir.cache_clear()
    yield
    paths.nix_lib_dir.cache_clear()


def test_defaults_hold_the_shared_facts() -> None:
    facts = paths.defaults()
    assert {"interface", "port", "allowed_ips", "secret_private_key", "prefix_sets"} <= set(facts)
    assert (paths.nix_lib_dir() / paths.DEFAULTS_FILE).is_file()


def test_env_var_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / paths.DEFAULTS_FILE).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / paths.DEFAULTS_FILE).write_text('interface = "x"\n')
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path))
    assert paths.nix_lib_dir() == tmp_path.resolve()


def test_env_var_pointing_nowhere_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path / "missing"))
    with pytest.raises(InputError, match=paths.ENV_VAR):
        paths.nix_lib_dir()


def test_core_file_missing_is_input_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / paths.DEFAULTS_FILE).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / paths.DEFAULTS_FILE).write_text("")
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path))
    with pytest.raises(InputError, match=r"default\.nix"):
        paths.core_file()

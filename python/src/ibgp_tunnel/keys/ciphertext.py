"""Proof that sops encrypted what it was given, and the `.sops.yaml` rule to blame if not.

sops encrypts only some values when a creation rule says so (``encrypted_regex``,
``unencrypted_regex``, the two suffixes, the two comment regexes) and always
leaves keys ending in its default ``_unencrypted`` suffix alone. A `.sops.yaml`
copied from a Kubernetes project (``encrypted_regex: ^(data|stringData)$``)
therefore turns "encrypt the WireGuard keys" into "write them in plaintext",
with exit code 0. So every encrypted document is parsed and each value we gave
sops must come back as ``ENC[AES256_GCM,…]`` before anything is written.

Functions:
    is_ciphertext(value: object) -> bool
    plaintext_leaves(plain: Mapping, encrypted: Any, output_text: str = "") -> list[Path_]
    stored_in_plaintext(encrypted: Any) -> set[Path_]
    refusal(...) -> str      # the message: the fix first, then what sops would have done
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import PurePosixPath
from typing import Any

from ibgp_tunnel.keys import sopsyaml

Path_ = tuple[str, ...]  # the keys from the document's root to a value

_ENC = re.compile(
    r"ENC\[AES256_GCM,data:[A-Za-z0-9+/=]*,iv:[A-Za-z0-9+/=]+,"
    r"tag:[A-Za-z0-9+/=]+,type:[a-z]+\]"
)
# The creation-rule keys that make sops leave values in plaintext; sops records
# the one in force in the file's `sops:` metadata under the same name.
SELECTIVE_SETTINGS = (
    "encrypted_regex",
    "unencrypted_regex",
    "encrypted_suffix",
    "unencrypted_suffix",
    "encrypted_comment_regex",
    "unencrypted_comment_regex",
)
SOPS_DEFAULT_UNENCRYPTED_SUFFIX = "_unencrypted"


def is_ciphertext(value: object) -> bool:
    return isinstance(value, str) and _ENC.fullmatch(value) is not None


def _leaves(tree: Any, path: Path_ = ()) -> Iterator[tuple[Path_, Any]]:
    if isinstance(tree, Mapping):
        for key, value in tree.items():
            if not path and key == "sops":
                continue  # sops's own metadata, not a value of ours
            yield from _leaves(value, (*path, str(key)))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            yield from _leaves(value, (*path, str(index)))
    else:
        yield path, tree


def _at(tree: Any, path: Path_) -> Any:
    node = tree
    for part in path:
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _carries_a_secret(value: object) -> bool:
    # sops leaves null and "" as they are: there is nothing to hide in them.
    return value is not None and value != ""


# Long enough that finding one in the output is no coincidence (keys have 44).
_VERBATIM_MIN = 16


def plaintext_leaves(
    plain: Mapping[str, Any], encrypted: Any, output_text: str = ""
) -> list[Path_]:
    """Values of ``plain`` that are not ciphertext at the same place in ``encrypted``,
    or whose text appears anywhere in ``output_text`` (belt and braces against a
    document our reader might take differently from sops)."""
    return [
        path
        for path, value in _leaves(plain)
        if _carries_a_secret(value)
        and (
            not is_ciphertext(_at(encrypted, path))
            or (isinstance(value, str) and len(value) >= _VERBATIM_MIN and value in output_text)
        )
    ]


def stored_in_plaintext(encrypted: Any) -> set[Path_]:
    """Values a sops file (parsed raw, not decrypted) holds in plaintext."""
    return {
        path
        for path, value in _leaves(encrypted)
        if _carries_a_secret(value) and not is_ciphertext(value)
    }


def _matching_rule(config_text: str, relative: str) -> tuple[int, Mapping[str, Any]] | None:
    """The creation rule sops picks for ``relative`` (first match), if we can tell."""
    try:
        config = sopsyaml.parse(config_text)
    except sopsyaml.YamlSubsetError:
        return None
    rules = config.get("creation_rules") if isinstance(config, Mapping) else None
    if not isinstance(rules, list):
        return None
    for index, rule in enumerate(rules):
        if not isinstance(rule, Mapping):
            return None
        regex = rule.get("path_regex")
        if regex is None:
            return index, rule
        try:
            if re.search(str(regex), relative):
                return index, rule
        except re.error:
            return None
    return None


def _setting_in_force(metadata: Mapping[str, Any]) -> tuple[str, str] | None:
    for name in SELECTIVE_SETTINGS:
        value = metadata.get(name)
        if value is None or value == "":
            continue
        if name == "unencrypted_suffix" and value == SOPS_DEFAULT_UNENCRYPTED_SUFFIX:
            continue  # sops writes its default even when no rule asked for it
        return name, str(value)
    return None


def suggested_path_regex(shown: str) -> str:
    """A path_regex for the files beside ``shown`` (relative to .sops.yaml)."""
    directory = str(PurePosixPath(shown).parent)
    return f"{re.escape(directory)}/[^/]+\\.yaml$" if directory != "." else "[^/]+\\.yaml$"


def _names(paths: list[Path_]) -> str:
    shown = ["/".join(path) for path in paths[:4]]
    more = f" and {len(paths) - 4} more" if len(paths) > 4 else ""
    return ", ".join(shown) + more


def refusal(
    *,
    shown: str,
    leaked: list[Path_],
    encrypted: Any,
    config_path: str,
    config_text: str,
) -> str:
    """Why nothing was written, the fix first (two lines)."""
    metadata = encrypted.get("sops") if isinstance(encrypted, Mapping) else None
    setting = _setting_in_force(metadata) if isinstance(metadata, Mapping) else None
    what = f"sops would have written {_names(leaked)} of {shown} in plaintext"
    if setting is None:
        if all(p[-1].endswith(SOPS_DEFAULT_UNENCRYPTED_SUFFIX) for p in leaked):
            return (
                f"rename {_names(leaked)} (for a PSK: the link) so that no key ends in "
                f"{SOPS_DEFAULT_UNENCRYPTED_SUFFIX!r}: sops never encrypts such keys.\n"
                f"{what}; nothing was written."
            )
        return (
            f"fix {config_path}: the creation rule for {shown} must encrypt every value.\n"
            f"{what}; nothing was written."
        )
    name, value = setting
    suggestion = suggested_path_regex(shown)
    rule = _matching_rule(config_text, shown)
    if rule is None:
        which = f"the creation rule matching {shown}"
    else:
        index, body = rule
        regex = body.get("path_regex")
        which = f"creation_rules[{index}]" + (f" (path_regex {regex})" if regex else "")
    return (
        f"fix {config_path}: remove {name} from {which}, or put a rule for "
        f"{suggestion} with the same keys and no {name} before it.\n"
        f"{what} ({name}: {value}); nothing was written."
    )

"""The registry as autopeer reads it: every real aut-num and mntner object of
DN42's registry (../shared/data/dn42-registry) parses or is skipped with a
reason, every `auth:` form operators wrote is a key or a reason, the parser
never raises on anything (hypothesis), and a hostile checkout (symlinks out,
huge files, NUL bytes, FIFOs, names with `../`, missing maintainers) is
skipped, never read through."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from autopeer_signers import ASN, FIXTURE, ORPHAN_ASN, PGP_PRIMARY
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ibgp_tunnel.autopeer.auth import CATEGORIES, Auth, parse_auth
from ibgp_tunnel.autopeer.errors import AutopeerRefused
from ibgp_tunnel.autopeer.registry import (
    MAX_OBJECT_BYTES,
    AutNum,
    Mntner,
    ObjectSkipped,
    aut_num,
    aut_num_of,
    mntner,
    mntner_of,
    parse_rpsl,
    scan_objects,
    scan_registry,
)

REGISTRY = Path(__file__).resolve().parents[3] / "shared" / "data" / "dn42-registry"
SSH_VALUE = re.compile(
    r"(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-\S+@openssh\.com) [A-Za-z0-9+/]+={0,2}"
)
# public halves of throwaway keys (ssh-keygen), nothing signs with them
ECDSA_521 = (
    "AAAAE2VjZHNhLXNoYTItbmlzdHA1MjEAAAAIbmlzdHA1MjEAAACFBABY+KP6m9MiOHDFQbKT0fRTQvwMXiZDqlkmDkn4mQHXiV8j"
    "ROW9o+kjyinr2ZLpGUB2LndldIkAw7vdfRhhTGWMFwAN5dZcS/d4WmqdH5Z24+vBL0qerycCnXoX/9cxjpN5/XjReeZXeIIHE/QN"
    "rx8z6t15kvx7BPYgthAVynrsrgpgKA=="
)
ED25519 = "AAAAC3NzaC1lZDI1NTE5AAAAIESRLK1tdV9kDZ8FYEAwEkd4CKFy9NFgVHYMlfjaxB4m"


def needs_registry() -> None:
    # conftest turns this skip into a failure in CI (the reason names ../shared/)
    if not (REGISTRY / "data").is_dir():
        pytest.skip("../shared/data/dn42-registry is absent (DN42's registry beside the checkout)")


def test_every_real_aut_num_and_mntner_parses_or_is_skipped_with_a_reason(
    capsys: pytest.CaptureFixture[str],
) -> None:
    needs_registry()
    scan = scan_registry(REGISTRY)
    with capsys.disabled():  # the counts belong in every run's output
        print(f"\nDN42 registry snapshot, as autopeer reads it:\n{scan.summary()}")
    files = {kind: len(os.listdir(REGISTRY / "data" / kind)) for kind in ("aut-num", "mntner")}
    skipped = {
        kind: sum(n for why, n in scan.skipped.items() if why.startswith(kind)) for kind in files
    }
    # every file is accounted for: parsed or skipped with a reason
    assert {k: scan.objects[k] + skipped[k] for k in files} == files
    assert scan.objects["aut-num"] > 2900 and scan.objects["mntner"] > 2700
    assert scan.auths["ssh"] > 900 and scan.auths["pgp"] > 1100
    assert all(why.split(" ", 1)[1] for why in scan.skipped)
    assert set(scan.auths_skipped) <= set(CATEGORIES)
    # the forms the snapshot is known to hold, each with its reason
    for category in (
        "PGPKEY- key-cert reference",
        "maintainer reference",
        "unsupported method",
        "unknown method",
    ):
        assert scan.auths_skipped[category] > 0, category


def test_every_real_asn_lookup_answers_or_refuses_cleanly() -> None:
    """aut_num and mntner as the service calls them, for every real ASN: a
    result, AutopeerRefused or ObjectSkipped, nothing else."""
    needs_registry()
    answered = refused = keys = 0
    for name in sorted(os.listdir(REGISTRY / "data" / "aut-num")):
        try:
            found = aut_num(REGISTRY, int(name[2:]))
        except AutopeerRefused:
            refused += 1
            continue
        answered += 1
        for maintainer in found.mnt_by:
            try:
                keys += len(mntner(REGISTRY, maintainer).auths)
            except ObjectSkipped as reason:
                assert str(reason)
    assert answered > 2900 and refused >= 1 and keys > 2000


def test_every_real_ssh_key_is_one_ssh_keygen_reads() -> None:
    """What reaches an allowed-signers file from the real registry is exactly
    what ssh-keygen parses: one fingerprint per key, none rejected."""
    needs_registry()
    objects = [f for _, f in scan_objects(REGISTRY / "data" / "mntner") if isinstance(f, dict)]
    maintainers = [m for m in map(lambda f: mntner_of("", f), objects) if isinstance(m, Mntner)]
    keys = [a.value for m in maintainers for a in m.auths if a.kind == "ssh"]
    assert all(SSH_VALUE.fullmatch(k) for k in keys)
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-f", "/dev/stdin"],
        input="\n".join(keys) + "\n",
        capture_output=True,
        text=True,
    )
    assert listed.returncode == 0, listed.stderr
    assert len(listed.stdout.splitlines()) == len(keys) > 900


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (f"ssh-ed25519 {ED25519} me@laptop", Auth("ssh", f"ssh-ed25519 {ED25519}")),
        (f"ssh-ed25519 {ED25519}", Auth("ssh", f"ssh-ed25519 {ED25519}")),
        (f"pgp-fingerprint {PGP_PRIMARY.lower()}", Auth("pgp", PGP_PRIMARY)),
        (
            "pgp-fingerprint 0EF9 7CE4 5C72 1701 042F  D45F 9CB1 7C29 CC0F 2DAA",
            Auth("pgp", PGP_PRIMARY),
        ),
        (f"pgp-fingerprint 0x{PGP_PRIMARY}", Auth("pgp", PGP_PRIMARY)),
        (f"ssh-ed5519 {ED25519} jesse@ubuntu", "unknown method"),
        ("PGPKEY-758AF1B8", "PGPKEY- key-cert reference"),
        ("MTN-FRITZ", "maintainer reference"),
        ("mntner 4A6F-MNT", "maintainer reference"),
        ("signify RWSvfI1GKZa0vq5C/Kp8Uf8xEpiR6dkHrBPLaeEvDlPFKMpsgIxGY3j/", "unsupported method"),
        ("ed25519-pw rsD41KQVNaH2pZCY1DKRNfOw-SlrrobQLxucCSOlGTI", "unsupported method"),
        ("from-git-repo https://git.dn42/billessig/registry.git", "unsupported method"),
        ("", "empty"),
        ("pgp-fingerprint 0EF97CE45C72", "malformed pgp-fingerprint"),
        ("pgp-fingerprint", "malformed pgp-fingerprint"),
        ("ssh-rsa", "malformed SSH key"),
        (f"ssh-rsa {ED25519}", "malformed SSH key: the key is not a ssh-rsa key"),
        ("ssh-ed25519 AAAA$(id)", "malformed SSH key"),
        ("ssh-ed25519 !!!!", "malformed SSH key"),
        ("ssh-ed25519 " + "A" * 20000, "malformed SSH key"),
        ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5", "malformed SSH key"),
        (f"ssh-ed25519 {ED25519}AAAA", "malformed SSH key"),
        ("ecdsa-sha2-nistp256 " + ECDSA_521, "malformed SSH key: the key is not"),
        ("ecdsa-sha2-nistp521 " + ECDSA_521, Auth("ssh", "ecdsa-sha2-nistp521 " + ECDSA_521)),
    ],
)
def test_each_auth_form_is_a_key_or_a_reason(value: str, expected: Auth | str) -> None:
    found = parse_auth(value)
    if isinstance(expected, Auth):
        assert found == expected
    else:
        assert isinstance(found, str) and found.startswith(expected), found


def test_a_key_comment_cannot_smuggle_a_line_into_allowed_signers() -> None:
    # parse_rpsl never yields a newline inside a value; parse_auth alone must
    # not either: only `<type> <base64>` is kept.
    found = parse_auth(f'ssh-ed25519 {ED25519} x\nk0 namespaces="*" ssh-ed25519 {ED25519}')
    assert found == Auth("ssh", f"ssh-ed25519 {ED25519}")


def test_rpsl_continuation_lines_and_comments() -> None:
    fields = parse_rpsl(
        "mntner: X-MNT\n# comment\nauth: ssh-ed25519\n  "
        + ED25519
        + "\n+ tail\nremarks:\nauth: pgp-fingerprint\n\tAA\n"
    )
    assert fields["auth"] == [f"ssh-ed25519 {ED25519} tail", "pgp-fingerprint AA"]
    assert fields["remarks"] == [""]


def test_the_fixture_registry_holds_the_test_signer() -> None:
    assert aut_num(FIXTURE, ASN) == AutNum(ASN, ["TEST-GONE-MNT", "TEST-AUTOPEER-MNT"])
    found = mntner(FIXTURE, "TEST-AUTOPEER-MNT")
    assert [a.kind for a in found.auths] == ["ssh", "pgp"]
    assert found.skipped and "PGPKEY-" in found.skipped[0]
    with pytest.raises(ObjectSkipped, match="unreadable"):
        mntner(FIXTURE, "TEST-GONE-MNT")
    scan = scan_registry(FIXTURE)
    assert scan.objects == {"aut-num": 5, "mntner": 3}


def registry(tmp_path: Path) -> Path:
    for kind in ("aut-num", "mntner"):
        (tmp_path / "data" / kind).mkdir(parents=True)
    (tmp_path / "data" / "aut-num" / "AS4242420999").write_text(
        "aut-num: AS4242420999\nmnt-by: TEST-AUTOPEER-MNT\n"
    )
    return tmp_path


def test_a_symlink_in_data_mntner_pointing_outside_is_skipped(tmp_path: Path) -> None:
    root = registry(tmp_path / "registry")
    outside = tmp_path / "outside"
    outside.write_text(f"mntner: TEST-AUTOPEER-MNT\nauth: ssh-ed25519 {ED25519}\n")
    (root / "data" / "mntner" / "TEST-AUTOPEER-MNT").symlink_to(outside)
    with pytest.raises(ObjectSkipped):
        mntner(root, "TEST-AUTOPEER-MNT")
    assert scan_registry(root).skipped == {
        "mntner unreadable: Too many levels of symbolic links": 1
    }
    # a symlink to a file inside the checkout is not followed either
    (root / "data" / "mntner" / "INSIDE-MNT").symlink_to(root / "data" / "aut-num" / "AS4242420999")
    with pytest.raises(ObjectSkipped):
        mntner(root, "INSIDE-MNT")


def test_a_symlinked_object_directory_is_refused(tmp_path: Path) -> None:
    root = registry(tmp_path / "registry")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "TEST-AUTOPEER-MNT").write_text(
        f"mntner: TEST-AUTOPEER-MNT\nauth: ssh-ed25519 {ED25519}\n"
    )
    (root / "data" / "mntner").rmdir()
    (root / "data" / "mntner").symlink_to(elsewhere)
    with pytest.raises(ObjectSkipped, match="symlink"):
        mntner(root, "TEST-AUTOPEER-MNT")
    with pytest.raises(ObjectSkipped, match="symlink"):
        scan_registry(root)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"mntner: TEST-AUTOPEER-MNT\nremarks: " + b"x" * MAX_OBJECT_BYTES + b"\n", "too large"),
        (
            b"mntner: TEST-AUTOPEER-MNT\n\0auth: ssh-ed25519 " + ED25519.encode() + b"\n",
            "NUL bytes",
        ),
    ],
)
def test_a_huge_or_binary_object_is_skipped(tmp_path: Path, content: bytes, reason: str) -> None:
    root = registry(tmp_path)
    (root / "data" / "mntner" / "TEST-AUTOPEER-MNT").write_bytes(content)
    with pytest.raises(ObjectSkipped, match=reason):
        mntner(root, "TEST-AUTOPEER-MNT")
    [why] = scan_registry(root).skipped
    assert why.startswith(f"mntner {reason}")


def test_a_fifo_or_directory_where_an_object_belongs_is_skipped_without_blocking(
    tmp_path: Path,
) -> None:
    root = registry(tmp_path)
    os.mkfifo(root / "data" / "mntner" / "TEST-AUTOPEER-MNT")
    (root / "data" / "mntner" / "DIR-MNT").mkdir()
    with pytest.raises(ObjectSkipped, match="not a regular file"):
        mntner(root, "TEST-AUTOPEER-MNT")
    assert sum(scan_registry(root).skipped.values()) == 2


@pytest.mark.parametrize(
    "name", ["../aut-num/AS4242420999", "..", "/etc/passwd", "A\0B", "", "x" * 200]
)
def test_a_maintainer_name_is_never_a_path(tmp_path: Path, name: str) -> None:
    with pytest.raises(ObjectSkipped, match="not a maintainer name"):
        mntner(registry(tmp_path), name)


def test_mnt_by_naming_a_missing_or_path_like_maintainer(tmp_path: Path) -> None:
    root = registry(tmp_path)
    (root / "data" / "aut-num" / "AS4242420999").write_text(
        "aut-num: AS4242420999\nmnt-by: ../../etc/passwd\nmnt-by: NOBODY-MNT\n"
    )
    assert aut_num(root, ASN).mnt_by == ["NOBODY-MNT"]
    from ibgp_tunnel.autopeer.signature import asn_maintainers

    with pytest.raises(AutopeerRefused, match="NOBODY-MNT") as caught:
        asn_maintainers(root, ASN)
    assert caught.value.field == "asn"
    with pytest.raises(AutopeerRefused, match="mnt-by"):
        (root / "data" / "aut-num" / "AS4242420999").write_text("aut-num: AS4242420999\n")
        aut_num(root, ASN)
    assert isinstance(aut_num(FIXTURE, ORPHAN_ASN), AutNum)


def test_an_aut_num_file_naming_another_asn_is_refused(tmp_path: Path) -> None:
    root = registry(tmp_path)
    (root / "data" / "aut-num" / "AS4242420999").write_text(
        "aut-num: AS4242420998\nmnt-by: X-MNT\n"
    )
    with pytest.raises(AutopeerRefused, match="differs from the file name"):
        aut_num(root, ASN)


RPSL_LINE = st.one_of(
    st.text(max_size=80),
    st.tuples(
        st.sampled_from(["aut-num", "mntner", "mnt-by", "auth", " ", "+", "\t", "#", "auth "]),
        st.text(max_size=60),
    ).map(lambda kv: f"{kv[0]}:{kv[1]}" if kv[0].strip() else kv[0] + kv[1]),
    st.tuples(
        st.sampled_from(
            ["ssh-ed25519", "ssh-rsa", "pgp-fingerprint", "sk-ssh-ed25519@openssh.com", "PGPKEY-1"]
        ),
        st.one_of(st.text(max_size=40), st.sampled_from([ED25519, PGP_PRIMARY, "AAAA", "=="])),
    ).map(lambda kv: f"auth: {kv[0]} {kv[1]}"),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(RPSL_LINE, max_size=12), name=st.text(max_size=20))
def test_fuzz_the_object_and_auth_parser_never_raises(lines: list[str], name: str) -> None:
    fields = parse_rpsl("\n".join(lines))
    for found in (mntner_of(name, fields), aut_num_of(name, fields)):
        assert isinstance(found, (Mntner, AutNum)) or (isinstance(found, str) and found)
    for value in fields.get("auth", []) + lines:
        auth = parse_auth(value)
        if isinstance(auth, Auth):
            assert SSH_VALUE.fullmatch(auth.value) or re.fullmatch(r"[0-9A-F]{40}", auth.value)
        else:
            assert auth.startswith(CATEGORIES)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=2000))
def test_fuzz_object_files_never_raise(tmp_path: Path, data: bytes) -> None:
    root = tmp_path / "fuzz"
    (root / "data" / "mntner").mkdir(parents=True, exist_ok=True)
    (root / "data" / "aut-num").mkdir(parents=True, exist_ok=True)
    (root / "data" / "mntner" / "FUZZ-MNT").write_bytes(data)
    (root / "data" / "aut-num" / "AS4242420999").write_bytes(
        b"aut-num: AS4242420999\nmnt-by: FUZZ-MNT\n" + data
    )
    scan = scan_registry(root)
    assert sum(scan.objects.values()) + sum(scan.skipped.values()) == 2
    try:
        mntner(root, "FUZZ-MNT")
    except ObjectSkipped as reason:
        assert str(reason)

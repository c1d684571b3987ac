"""Self-service DN42 peering through the HTTP API, in the lab: `lab up` on
plans/autopeer.toml runs the web service and the apply unit in dmz's namespace;
an outside DN42 router (a namespace in no plan, its own WireGuard key, the
fixture registry's AS4242420999 whose maintainer's test key signs) asks for a
challenge, signs it with `ssh-keygen -Y sign` and submits it, as a client behind
the host's reverse proxy would (the HTTP client runs in dmz's namespace against
the web's listen address). It gets a tunnel and an Established session: once
with an endpoint (the reflector dials, the outside only listens) and once
without (the outside dials in through the host firewall, nixos-fw, which opens
the autopeer port range and admits the autopeer interfaces' group).

Refused at the API, each leaving no interface, nft element, BIRD protocol or
state behind: a signature by a key not in the ASN's maintainer, a signature
over a challenge of another ASN, a request for another ASN than the challenge's,
a replayed and an expired challenge, injection in every field, a second
peering beyond max_per_asn. An update with a new signature changes the
peering; both units killed, the interface deleted and both started again (a
reboot, as far as they can tell) restore it; a removal with a new signature
tears everything down.

BIRD 3 unless IBGP_TUNNEL_BIRD_DIR names another (run again with
.cache/bird/bird2/bin for BIRD 2). A lab of its own (directory and prefix)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import autopeer_signers
import pytest
import tomlkit
from labtools import (
    EXAMPLE_PLAN,
    REPO,
    TEST_LAB_DIR,
    TEST_PREFIX,
    Lab,
    birdc,
    environment,
    poll,
    skip_reason,
)

from ibgp_tunnel import keys as wgkeys
from ibgp_tunnel import planfile
from ibgp_tunnel.autopeer import nftsets
from ibgp_tunnel.autopeer.signature import NAMESPACE
from ibgp_tunnel.autopeer.state import read_peers
from ibgp_tunnel.lab import autopeerlab, daemons, location
from ibgp_tunnel.lab.artifacts import saved_artifacts
from ibgp_tunnel.lab.down import down
from ibgp_tunnel.lab.topology import build_topology
from ibgp_tunnel.lab.up import find_secrets_dir, start_bird, up

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))

LAB_DIR = TEST_LAB_DIR + "-apapi"
PREFIX = TEST_PREFIX[:-1] + "w-"
PLAN = REPO / "python" / "tests" / "plans" / "autopeer.toml"
DATA = REPO / "python" / "tests" / "data" / "autopeer-registry"
REFLECTOR, OUR_ASN, OUR_LINK_LOCAL = "dmz", 4242420038, "fe80::38"
ASN = 4242420999  # the fixture's signer (TEST-AUTOPEER-MNT, test-ssh-ed25519)
OTHER_ASN = 4242420997  # another maintainer's ASN (TEST-SUBKEY-MNT: a PGP key only)
OUT_V4, OUT_V6 = "172.20.199.0/27", "fd42:4242:999::/48"  # its route objects
DEADLINE = 90
# The plan's challenge lifetime here: the field's lowest, so the expired
# challenge is waited out. The rate limit is raised: this test sends more than
# ten requests a minute from one address for one ASN (the limit has its own tests).
CHALLENGE_TTL = 30
RATE_LIMIT = 1000
# Two peerings in total: the outside's, and one more ASN's in the test of the limit.
MAX_PEERS = 2
SECOND_ASN = 4242420995  # TEST-OTHER-MNT's second ASN (no static peer): test-other-ssh-ed25519


@pytest.fixture(scope="module")
def plan_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """plans/autopeer.toml with the lifetime and rate limit above."""
    data = tomlkit.parse(PLAN.read_text())
    autopeer = data["hosts"]["dmz"]["autopeer"]  # type: ignore[index]
    autopeer["challenge_ttl"] = CHALLENGE_TTL  # type: ignore[index]
    autopeer["rate_limit"] = RATE_LIMIT  # type: ignore[index]
    autopeer["max_peers"] = MAX_PEERS  # type: ignore[index]
    path = tmp_path_factory.mktemp("plan") / "autopeer.toml"
    path.write_text(tomlkit.dumps(data))
    return path


@pytest.fixture(scope="module")
def lab(plan_path: Path) -> Iterator[Lab]:
    with environment(
        **{
            location.LAB_DIR_ENV: LAB_DIR,
            location.PREFIX_ENV: PREFIX,
            location.DN42_REGISTRY_ENV: str(DATA / "data"),
            "SOPS_AGE_KEY_FILE": str(REPO / "secrets" / "test-age-key.txt"),
        }
    ):
        down()
        try:
            plan = planfile.load(plan_path)
            secrets = find_secrets_dir(EXAMPLE_PLAN, planfile.load(EXAMPLE_PLAN))
            st = up(plan_path, timeout=DEADLINE, secrets_dir=secrets)
            topo = build_topology(plan, PREFIX)
            yield Lab(st, plan, saved_artifacts(Path(LAB_DIR)), topo)
        finally:
            down()


# --- the API, as the reverse proxy forwards it ------------------------------------------


def api(lab: Lab, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    """One HTTP request from dmz's namespace to the web's listen address and port."""
    url = autopeerlab.api_base(lab.plan, REFLECTOR) + path
    return autopeerlab.call_api(ns(lab), method, url, body)


def sign(text: str, key_name: str = "test-ssh-ed25519") -> str:
    """`ssh-keygen -Y sign` over the challenge text with a fixture key."""
    return autopeer_signers.ssh_sign(text.encode(), key_name)


def challenge(lab: Lab, op: str, request: dict[str, Any] | None, asn: int = ASN) -> dict[str, Any]:
    status, body = api(lab, "POST", "/api/challenge", {"op": op, "asn": asn, "request": request})
    assert status == 200, body
    assert body["text"] and body["id"] and NAMESPACE in body["sign_command"], body
    return body


def submission(issued: dict[str, Any], signature: str) -> dict[str, Any]:
    return {"challenge_id": issued["id"], "signature": signature, "signature_kind": "ssh"}


def status_of(lab: Lab, asn: int = ASN) -> dict[str, Any]:
    status, body = api(lab, "GET", f"/api/peerings/{asn}")
    return body if status == 200 else {}


def signed(
    lab: Lab,
    op: str,
    request: dict[str, Any] | None,
    asn: int = ASN,
    key_name: str = "test-ssh-ed25519",
) -> dict[str, Any]:
    """The whole flow: challenge, signature, submission (202), then the status the
    API shows once the apply unit answered (no longer pending)."""
    issued = challenge(lab, op, request, asn=asn)
    signature = sign(issued["text"], key_name)
    code, body = api(lab, "POST", "/api/peerings", submission(issued, signature))
    assert code == 202 and body["status"] == "pending", body
    answered = poll(
        lambda: (s := status_of(lab, asn)) and s.get("challenge") == issued["id"] and s,
        DEADLINE,
        f"AS{asn} {op} answered through the API",
    )
    return answered


# --- what the reflector runs --------------------------------------------------------------


def ns(lab: Lab) -> str:
    return str(lab.st.nodes[REFLECTOR]["netns"])


def elements(lab: Lab) -> list[list[str]]:
    """The autopeer sets' elements in dmz's namespace."""
    code = textwrap.dedent(
        f"""
        import json
        from ibgp_tunnel.autopeer import nftsets
        print(json.dumps([sorted(nftsets.elements("ibgp-tunnel", n))
              for n in ({nftsets.IFACES_SET!r}, {nftsets.PORTS_SET!r})]))
        """
    )
    argv = ["ip", "netns", "exec", ns(lab), sys.executable, "-c", code]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def links(lab: Lab) -> set[str]:
    out = subprocess.run(
        ["ip", "-n", ns(lab), "-o", "link", "show"], capture_output=True, text=True, check=True
    ).stdout
    return {line.split(": ")[1].split("@")[0] for line in out.splitlines()}


def protocols(lab: Lab) -> set[str]:
    out = birdc(lab.st, REFLECTOR, "show", "protocols")
    return {line.split()[0] for line in out.splitlines()[2:] if line.strip()}


def state() -> Any:
    return autopeerlab.state_dir(Path(LAB_DIR), REFLECTOR)


def snapshot(lab: Lab) -> dict[str, Any]:
    """Everything a request could leave behind on the reflector."""
    return {
        "links": links(lab),
        "elements": elements(lab),
        "protocols": protocols(lab),
        "peers": read_peers(state()),
        "include": state().bird_include.read_text(),
        "spool": sorted(p.name for p in state().spool.iterdir()),
    }


def imported(lab: Lab, protocol: str) -> bool:
    """What the outside announces (its route objects: ROA-valid) is imported."""
    routes = birdc(lab.st, REFLECTOR, "show", "route", "protocol", protocol)
    return OUT_V4 in routes and OUT_V6 in routes


def session(lab: Lab, protocol: str) -> str:
    out = birdc(lab.st, REFLECTOR, "show", "protocols", protocol)
    return out.splitlines()[-1] if protocol in out else ""


def established(lab: Lab, protocol: str, what: str) -> None:
    poll(lambda: "Established" in session(lab, protocol), DEADLINE, what)


# --- the outside router -------------------------------------------------------------------


@pytest.fixture(scope="module")
def outside(lab: Lab) -> dict[str, Any]:
    """AS4242420999's router, peered through the API with its endpoint: it only
    listens, the reflector dials it."""
    router = autopeerlab.add_outside(
        lab.st, REFLECTOR, ASN, announce_ipv4=(OUT_V4,), announce_ipv6=(OUT_V6,)
    )
    request = router.request()
    issued = challenge(lab, "add", request)
    sent = submission(issued, sign(issued["text"]))
    code, body = api(lab, "POST", "/api/peerings", sent)
    assert code == 202, body
    status = poll(
        lambda: (s := status_of(lab)) and s.get("state") == "applied" and s,
        DEADLINE,
        "the peering applied",
    )
    (peer,) = status["peers"]
    # The status gives the peer the reflector's public key to configure.
    reflector_key = peer["public_key"]
    autopeerlab.start_outside(lab.st, router, peer, reflector_key, dial=False)
    config = autopeerlab.outside_bird_config(router, OUR_LINK_LOCAL, OUR_ASN)
    lab.st.daemons.append(start_bird(Path(LAB_DIR), router.node, router.netns, config))
    lab.st.save()
    protocol = poll(lambda: _protocol(lab, peer["name"]), 30, "its BGP protocol in the status")
    established(lab, protocol, "the autopeer session (the reflector dials)")
    return {
        "router": router,
        "peer": peer,
        "protocol": protocol,
        "first": sent,
        "reflector_key": reflector_key,
    }


def _protocol(lab: Lab, name: str) -> str | None:
    for p in status_of(lab).get("peers", []):
        if p["name"] == name and p.get("protocol"):
            return str(p["protocol"])
    return None


def test_signed_request_gets_tunnel_and_session(lab: Lab, outside: dict[str, Any]) -> None:
    peer, protocol = outside["peer"], outside["protocol"]
    assert peer["request"]["endpoint"] == outside["router"].request()["endpoint"]
    out = birdc(lab.st, REFLECTOR, "show", "protocols", "all", protocol)
    assert "Established" in out and f"Neighbor AS:      {ASN}" in out, out
    # Its UPDATEs follow the OPEN: polled, not read once after Established.
    poll(lambda: imported(lab, protocol), 30, "its routes imported (ROA-valid)")
    assert elements(lab) == [[peer["interface"]], [str(peer["listen_port"])]]
    # The API shows the session the apply unit sees.
    poll(
        lambda: [p.get("session") for p in status_of(lab).get("peers", [])] == ["Established"],
        30,
        "the session in the API's status",
    )
    # The outside end too.
    router = outside["router"]
    assert "Established" in birdc(lab.st, router.node, "show", "protocols")


def _refused(
    lab: Lab, path: str, body: dict[str, Any], code: int | tuple[int, ...], field: str
) -> dict[str, Any]:
    status, answer = api(lab, "POST", path, body)
    codes = code if isinstance(code, tuple) else (code,)
    assert status in codes, (status, answer)
    assert answer["field"] == field and answer["error"], answer
    return answer


def test_refusals_leave_nothing_behind(lab: Lab, outside: dict[str, Any]) -> None:
    router = outside["router"]
    before = snapshot(lab)
    stranger = {
        "asn": OTHER_ASN,
        "public_key": wgkeys.public_key_of(wgkeys.generate_private_key()),
        "neighbor": "fe80::997",
    }
    # A signature by a key not in the ASN's maintainer: our signer's key over a
    # challenge for AS4242420997 (TEST-SUBKEY-MNT).
    theirs = challenge(lab, "add", stranger, asn=OTHER_ASN)
    answer = _refused(
        lab, "/api/peerings", submission(theirs, sign(theirs["text"])), 403, "signature"
    )
    assert f"AS{OTHER_ASN}" in answer["error"] or "maintainer" in answer["error"], answer
    # A challenge of another ASN: the signer's own challenge signed, the other's id sent.
    ours = challenge(lab, "update", router.request(mtu=1380))
    _refused(lab, "/api/peerings", submission(theirs, sign(ours["text"])), 403, "signature")
    # A request for another ASN than the challenge names.
    _refused(
        lab,
        "/api/challenge",
        {"op": "add", "asn": ASN, "request": stranger},
        422,
        "request.asn",
    )
    # A replayed challenge: the add that made the peering, sent again.
    _refused(lab, "/api/peerings", outside["first"], (409, 410), "challenge_id")
    # Beyond max_per_asn (1): a second add for the ASN.
    _refused(
        lab,
        "/api/challenge",
        {"op": "add", "asn": ASN, "request": router.request(neighbor="fe80::999:2")},
        409,
        "asn",
    )
    # An expired challenge: issued, then signed and sent after its lifetime.
    late = challenge(lab, "update", router.request(mtu=1390))
    time.sleep(CHALLENGE_TTL + 1)
    _refused(lab, "/api/peerings", submission(late, sign(late["text"])), 410, "challenge_id")
    # Injection in every field of a request, and in the submission's.
    for key, value in INJECTIONS:
        request = router.request(endpoint=False) | {key: value}
        _refused(
            lab,
            "/api/challenge",
            {"op": "update", "asn": ASN, "request": request},
            422,
            f"request.{key}",
        )
    unknown = router.request(endpoint=False) | {'x"\n}; protocol': "1"}
    body = {"op": "update", "asn": ASN, "request": unknown}
    _refused(lab, "/api/challenge", body, 422, "request.(unknown field)")
    for key, value, codes in SUBMISSION_INJECTIONS:
        issued = challenge(lab, "update", router.request(mtu=1370))
        body = submission(issued, sign(issued["text"])) | {key: value}
        _refused(lab, "/api/peerings", body, codes, key)
    # Nothing of any of it reached the reflector, and the peering is untouched.
    assert snapshot(lab) == before
    assert status_of(lab)["peers"][0]["request"] == outside["peer"]["request"]
    assert "Established" in session(lab, outside["protocol"])


_HOSTILE = (
    "x\nprotocol bgp evil { }",
    'a"; } protocol static x {',
    "$(touch /tmp/pwned)",
    "../../etc/passwd",
    "a\x00b",
    "\u202eevil",
    "}{;",
)
INJECTIONS: list[tuple[str, Any]] = (
    [("public_key", v) for v in (*_HOSTILE, "A" * 43 + "=\n")]
    + [("endpoint", v) for v in (*_HOSTILE, "h:1;reboot", "x" * 400 + ":1")]
    + [("neighbor", v) for v in (*_HOSTILE, "fe80::1%eth0", "fe80::1/64")]
    + [("peer_ipv4", v) for v in (*_HOSTILE, "172.20.1.1/32")]
    + [("mtu", v) for v in ("1420; x", 10**30, -1, 1.5, True)]
    + [("asn", v) for v in (f"{ASN}\n", -ASN, 2**64)]
)
SUBMISSION_INJECTIONS: list[tuple[str, Any, tuple[int, ...]]] = [
    ("signature_kind", "ssh\n", (422,)),
    ("signature_kind", "x509", (422,)),
    ("pgp_public_key", "-----BEGIN PGP PUBLIC KEY BLOCK-----\n$(id)\n", (422,)),
    ("signature", "$(touch /tmp/pwned)", (422,)),
    # Armored, but not a signature of the challenge: refused by ssh-keygen.
    (
        "signature",
        "-----BEGIN SSH SIGNATURE-----\n$(id)\n-----END SSH SIGNATURE-----\n",
        (403, 422),
    ),
    ("challenge_id", "../../spool/x", (422,)),
]


def test_owner_updates(lab: Lab, outside: dict[str, Any]) -> None:
    """A signed update through the API replaces the peering: here its MTU."""
    peer = outside["peer"]
    status = signed(lab, "update", outside["router"].request(mtu=1400))
    assert status["state"] == "applied", status
    (record,) = read_peers(state()).values()
    assert record["request"]["mtu"] == 1400
    link = subprocess.run(
        ["ip", "-n", ns(lab), "link", "show", "dev", peer["interface"]],
        capture_output=True,
        text=True,
        check=False,
    )
    assert " mtu 1400 " in link.stdout, link.stdout
    established(lab, outside["protocol"], "the session after the update")


def _unit(lab: Lab, name: str) -> daemons.Daemon:
    (unit,) = [d for d in lab.st.daemons if d.name == f"{REFLECTOR}/{name}"]
    return unit


def test_restart_of_both_units_restores(lab: Lab, outside: dict[str, Any]) -> None:
    """Both units killed, the interface and set elements gone (what a reboot leaves
    of them), both started again: the peering comes back, the API answers."""
    peer = outside["peer"]
    for name in ("autopeer-web", "autopeer-apply"):
        unit = _unit(lab, name)
        daemons.stop(unit)
        lab.st.daemons.remove(unit)
    lab.st.save()
    subprocess.run(["ip", "-n", ns(lab), "link", "delete", "dev", peer["interface"]], check=True)
    for nft_set in (nftsets.IFACES_SET, nftsets.PORTS_SET):
        flush = ["nft", "flush", "set", "inet", "ibgp-tunnel", nft_set]
        subprocess.run(["ip", "netns", "exec", ns(lab), *flush], check=True)
    assert elements(lab) == [[], []] and peer["interface"] not in links(lab)
    poll(lambda: "Established" not in session(lab, outside["protocol"]), 30, "session down")
    lab.st.daemons.append(autopeerlab.start_apply(Path(LAB_DIR), REFLECTOR, ns(lab), "ibgp-tunnel"))
    web = autopeerlab.start_web(
        Path(LAB_DIR), REFLECTOR, ns(lab), lab.plan["hosts"][REFLECTOR]["autopeer"]
    )
    assert web is not None
    lab.st.daemons.append(web)
    lab.st.save()
    established(lab, outside["protocol"], "the restored session")
    assert elements(lab) == [[peer["interface"]], [str(peer["listen_port"])]]
    poll(lambda: status_of(lab).get("state") == "applied", 30, "the API after the restart")


def _torn_down(lab: Lab, peer: dict[str, Any], protocol: str) -> None:
    assert read_peers(state()) == {}
    assert state().bird_include.read_text().strip() == ""
    assert protocol not in protocols(lab)
    assert peer["interface"] not in links(lab)
    assert elements(lab) == [[], []]


def test_removal_tears_everything_down(lab: Lab, outside: dict[str, Any]) -> None:
    status = signed(lab, "remove", None)
    assert status["state"] == "removed", status
    _torn_down(lab, outside["peer"], outside["protocol"])
    router = outside["router"]
    poll(
        lambda: "Established" not in birdc(lab.st, router.node, "show", "protocols"),
        DEADLINE,
        "the outside's session down",
    )


def test_dialing_in_without_an_endpoint(lab: Lab, outside: dict[str, Any]) -> None:
    """A request without an endpoint: the reflector cannot dial, the outside dials
    its autopeer port through nixos-fw (the range the core renders for
    allowedUDPPortRanges), BGP comes in on the autopeer interface (its group)."""
    router = outside["router"]
    fw = subprocess.run(
        ["ip", "netns", "exec", ns(lab), "nft", "list", "chain", "inet", "nixos-fw", "input-allow"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "20000-29999" in fw, fw
    status = signed(lab, "add", router.request(endpoint=False))
    assert status["state"] == "applied", status
    (peer,) = status["peers"]
    assert "endpoint" not in peer["request"], peer
    autopeerlab.dial_reflector(lab.st, router, peer, outside["reflector_key"])
    protocol = poll(lambda: _protocol(lab, peer["name"]), 30, "its BGP protocol")
    established(lab, protocol, "the session it dialed in for")
    # Its UPDATEs follow the OPEN: polled, not read once after Established.
    poll(lambda: imported(lab, protocol), 30, "its routes imported (ROA-valid)")
    # And away again with a signed removal.
    status = signed(lab, "remove", None)
    assert status["state"] == "removed", status
    _torn_down(lab, peer, protocol)


def test_beyond_the_total_limit_is_refused(lab: Lab, outside: dict[str, Any]) -> None:
    """max_peers (2 here): with two ASNs peered, a third ASN's add is refused before
    a challenge is issued; the second's removal frees the place again."""
    router = outside["router"]
    assert signed(lab, "add", router.request(endpoint=False))["state"] == "applied"
    second = {
        "asn": SECOND_ASN,
        "public_key": wgkeys.public_key_of(wgkeys.generate_private_key()),
        "neighbor": "fe80::995",
    }
    status = signed(lab, "add", second, SECOND_ASN, "test-other-ssh-ed25519")
    assert status["state"] == "applied", status
    before = snapshot(lab)
    third = dict(second, asn=OTHER_ASN, neighbor="fe80::997")
    answer = _refused(
        lab, "/api/challenge", {"op": "add", "asn": OTHER_ASN, "request": third}, 409, ""
    )
    assert "no more peerings" in answer["error"], answer
    assert snapshot(lab) == before
    status = signed(lab, "remove", None, SECOND_ASN, "test-other-ssh-ed25519")
    assert status["state"] == "removed", status
    assert challenge(lab, "add", third, asn=OTHER_ASN)["id"]  # a place again
    assert signed(lab, "remove", None)["state"] == "removed"
    assert read_peers(state()) == {} and elements(lab) == [[], []]


_FLOOD = """
import json, sys, urllib.error, urllib.request
url, count = sys.argv[1], int(sys.argv[2])
body = json.dumps({"op": "add", "asn": int(sys.argv[3]), "request": None}).encode()
seen = []
for _ in range(count):
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as answer:
            status, raw, retry = answer.status, answer.read(), None
    except urllib.error.HTTPError as error:
        status, raw, retry = error.code, error.read(), error.headers.get("Retry-After")
    seen.append({"status": status, "body": json.loads(raw), "retry_after": retry})
print(json.dumps(seen))
"""


def test_a_flood_is_refused_before_any_work(lab: Lab, outside: dict[str, Any]) -> None:
    """Last in this module: the service's limit is spent for a minute afterwards.
    Beyond the per-minute limit (here the service's total, 120: the plan raised
    the per-address one) every request is 429 with Retry-After, issues no
    challenge and changes nothing on the reflector."""
    before = snapshot(lab)
    challenges = sorted(p.name for p in state().challenges.iterdir())
    url = autopeerlab.api_base(lab.plan, REFLECTOR) + "/api/challenge"
    argv = ["ip", "netns", "exec", ns(lab), sys.executable, "-I", "-c", _FLOOD, url, "150"]
    # A request without its peering request: refused (422) after admission,
    # so a 200 never issues a challenge here either.
    argv.append(str(OTHER_ASN))
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True)
    seen = json.loads(done.stdout)
    statuses = [s["status"] for s in seen]
    assert 429 in statuses, statuses
    first = statuses.index(429)
    assert set(statuses[:first]) <= {422} and set(statuses[first:]) == {429}, statuses
    assert first <= 120, statuses
    for answer in seen[first:]:
        assert "too many requests" in answer["body"]["error"], answer
        assert int(answer["retry_after"]) >= 1, answer
    assert sorted(p.name for p in state().challenges.iterdir()) == challenges
    assert snapshot(lab) == before

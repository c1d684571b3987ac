"""The autopeer web service over HTTP: a signed request reaches the spool, and
every refusal of issue 24 item 6 is a JSON `{error, field}` with a 4xx status:
a key not the ASN's maintainer's, another ASN's challenge, a replayed or an
expired challenge, injection in every field, requests beyond the limits, the
rate limits; and junk at the HTTP level never gets a traceback or an echo.
Signatures are real (ssh-keygen -Y sign, gpg --detach-sign)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import autopeer_signers as signers
import autopeertools as tools
import pytest
import test_autopeer_core as core_tests
from autopeertools import ASN, OTHER_ASN, call, request
from nixcore import needs_nix

from ibgp_tunnel.autopeer import spool
from ibgp_tunnel.autopeer.server import AutopeerServer
from ibgp_tunnel.autopeer.web import WebConfig


@pytest.fixture
def config(tmp_path: Path) -> WebConfig:
    # Limits high enough for the tests that send many requests; the rate-limit
    # test sets its own.
    return WebConfig(
        state_dir=tools.state_dir(tmp_path),
        host_name="rr.test",
        rate_limit=10000,
        asn_rate_limit=10000,
        total_rate_limit=10000,
    )


@pytest.fixture
def server(config: WebConfig) -> Iterator[AutopeerServer]:
    with tools.running(config) as server:
        yield server


def challenge(
    server: AutopeerServer, op: str = "add", asn: int = ASN, req: Any = None
) -> dict[str, Any]:
    body = {
        "op": op,
        "asn": asn,
        "request": request(asn) if req is None and op != "remove" else req,
    }
    reply = call(server, "POST", "/api/challenge", body)
    assert reply.status == 200, reply.body
    return reply.json


def submit(
    server: AutopeerServer, issued: dict[str, Any], signature: str, **extra: Any
) -> tools.Reply:
    body = {"challenge_id": issued["id"], "signature": signature, "signature_kind": "ssh", **extra}
    return call(server, "POST", "/api/peerings", body)


def refused(reply: tools.Reply, status: int, field: str) -> str:
    assert reply.status == status, (reply.status, reply.body)
    data = reply.json
    assert set(data) == {"error", "field"} and data["field"] == field, data
    assert "Traceback" not in data["error"]
    return str(data["error"])


# --- the whole flow ------------------------------------------------------------


def test_signed_add_is_spooled_and_its_status_shown(
    server: AutopeerServer,
    config: WebConfig,
) -> None:
    issued = challenge(server)
    assert f"AS{ASN}" in issued["text"] and "rr.test" in issued["text"]
    assert issued["sign_command"].startswith("ssh-keygen -Y sign -n dn42-autopeer@ibgp-tunnel")
    reply = submit(server, issued, tools.ssh_sign(issued["text"]))
    assert reply.status == 202, reply.body
    assert reply.json == {"asn": ASN, "op": "add", "status": "pending"}
    [entry] = tools.spool_entries(config.state_dir)
    # The apply unit's own reader takes it.
    [spooled] = spool.read_spool(config.spool)
    assert spooled.entry is not None and spooled.entry.model_dump() == entry
    assert entry["version"] == 1 and entry["op"] == "add" and entry["asn"] == ASN
    assert entry["request"] == request()
    assert entry["challenge"] == {"id": issued["id"], "text": issued["text"]}
    assert entry["signature_kind"] == "ssh" and entry["pgp_public_key"] is None
    assert (
        config.spool / next(iter(p.name for p in config.spool.glob("*.json")))
    ).stat().st_mode & 0o777 == 0o640
    assert call(server, "GET", f"/api/peerings/{ASN}").json["state"] == "pending"
    applied = {"state": "applied", "peers": [{"name": f"ap{ASN}", "listen_port": 20999}]}
    tools.status_file(config.state_dir, ASN, applied)
    assert call(server, "GET", f"/api/peerings/{ASN}").json == {"asn": ASN, **applied}


def test_pgp_signature_is_accepted(
    server: AutopeerServer,
    config: WebConfig,
) -> None:
    issued = challenge(server)
    signature = tools.pgp_sign(issued["text"])
    body = {
        "challenge_id": issued["id"],
        "signature": signature,
        "signature_kind": "pgp",
        "pgp_public_key": signers.public_key(),
    }
    reply = call(server, "POST", "/api/peerings", body)
    assert reply.status == 202, reply.body
    [entry] = tools.spool_entries(config.state_dir)
    assert entry["signature_kind"] == "pgp" and entry["pgp_public_key"] == signers.public_key()


def test_remove_and_update_need_a_peering_and_a_new_signature(
    server: AutopeerServer,
    config: WebConfig,
) -> None:
    refused(
        call(server, "POST", "/api/challenge", {"op": "remove", "asn": ASN, "request": None}),
        404,
        "asn",
    )
    tools.status_file(config.state_dir, ASN, {"state": "applied", "peers": [{"name": f"ap{ASN}"}]})
    issued = challenge(server, "remove")
    assert submit(server, issued, tools.ssh_sign(issued["text"])).status == 202
    issued = challenge(server, "update", req=request(mtu=1400))
    assert submit(server, issued, tools.ssh_sign(issued["text"])).status == 202
    ops = [(e["op"], e["request"]) for e in tools.spool_entries(config.state_dir)]
    assert ops == [("remove", None), ("update", request(mtu=1400))]


# --- signatures and challenges ----------------------------------------------------


def test_a_key_not_the_asns_maintainers_is_refused(
    server: AutopeerServer,
    config: WebConfig,
) -> None:
    issued = challenge(server)
    refused(
        submit(server, issued, tools.ssh_sign(issued["text"], tools.THEIRS)),
        403,
        "signature",
    )
    assert tools.spool_entries(config.state_dir) == []


def test_another_asns_challenge_is_refused(
    server: AutopeerServer,
    config: WebConfig,
) -> None:
    # The other operator's challenge, signed with our key: their maintainer did not sign it.
    theirs = challenge(server, asn=OTHER_ASN)
    refused(submit(server, theirs, tools.ssh_sign(theirs["text"])), 403, "signature")
    # Our signature of our challenge, presented with their challenge's id.
    ours = challenge(server)
    signature = tools.ssh_sign(ours["text"])
    refused(submit(server, theirs, signature), 403, "signature")
    # A request for one ASN under a challenge asked for another.
    refused(
        call(
            server,
            "POST",
            "/api/challenge",
            {"op": "add", "asn": ASN, "request": request(OTHER_ASN)},
        ),
        422,
        "request.asn",
    )
    assert tools.spool_entries(config.state_dir) == []


def test_a_tampered_text_or_a_garbage_signature_is_refused(
    server: AutopeerServer,
) -> None:
    issued = challenge(server)
    tampered = tools.ssh_sign(issued["text"].replace("add", "remove"))
    refused(submit(server, issued, tampered), 403, "signature")
    refused(
        submit(
            server, issued, "-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n"
        ),
        403,
        "signature",
    )


def test_a_replayed_challenge_is_refused(
    server: AutopeerServer,
    config: WebConfig,
) -> None:
    issued = challenge(server)
    signature = tools.ssh_sign(issued["text"])
    assert submit(server, issued, signature).status == 202
    refused(submit(server, issued, signature), 409, "challenge_id")
    assert len(tools.spool_entries(config.state_dir)) == 1


def test_an_expired_challenge_is_refused(
    server: AutopeerServer,
    config: WebConfig,
) -> None:
    issued = challenge(server)
    signature = tools.ssh_sign(issued["text"])
    start = server.clock()
    server.clock = lambda: start + config.challenge_ttl + 1
    refused(submit(server, issued, signature), 410, "challenge_id")
    refused(submit(server, {"id": "never-issued"}, signature), 410, "challenge_id")
    assert tools.spool_entries(config.state_dir) == []


# --- injection: every field ---------------------------------------------------------

PAYLOADS = [
    "x\nprotocol bgp evil {",
    'x"; }',
    'x; include "/etc/shadow";',
    "}",
    "{ }",
    "$(touch /tmp/pwned)",
    "`id`",
    "../../etc/passwd",
    "x\x00y",
    "fe80::1%eth0",
    "\uff46\uff45\uff18\uff10::\uff11",  # fullwidth fe80::1
    "<script>alert(1)</script>",
    "a" * 5000,
    "",
    " ",
]
REQUEST_TEXT_FIELDS = ["public_key", "endpoint", "neighbor", "peer_ipv4"]


@pytest.mark.parametrize("key", REQUEST_TEXT_FIELDS)
def test_injection_in_a_request_field_is_refused_naming_it(
    server: AutopeerServer, key: str
) -> None:
    for payload in PAYLOADS:
        reply = call(
            server,
            "POST",
            "/api/challenge",
            {"op": "add", "asn": ASN, "request": request(**{key: payload})},
        )
        error = refused(reply, 422, f"request.{key}")
        assert payload.strip() == "" or payload not in error


@pytest.mark.parametrize(
    ("key", "values"),
    [
        (
            "mtu",
            [
                0,
                1279,
                9001,
                -1,
                2**64,
                1420.5,
                "1420",
                "1420; drop",
                True,
                [1420],
                {"a": 1},
            ],
        ),
        ("asn", [0, -1, 2**32, "4242420999", 4242420999.0, True, [ASN]]),
    ],
)
def test_numbers_out_of_range_or_not_numbers_are_refused(
    server: AutopeerServer, key: str, values: list[Any]
) -> None:
    for value in values:
        if key == "asn":
            reply = call(
                server, "POST", "/api/challenge", {"op": "add", "asn": value, "request": request()}
            )
            refused(reply, 422, "asn")
        else:
            reply = call(
                server,
                "POST",
                "/api/challenge",
                {"op": "add", "asn": ASN, "request": request(mtu=value)},
            )
            refused(reply, 422, "request.mtu")


def test_injection_in_the_envelope_fields_is_refused(
    server: AutopeerServer,
) -> None:
    for payload in [*PAYLOADS, "add\n", "ADD", None, 1]:
        refused(
            call(
                server, "POST", "/api/challenge", {"op": payload, "asn": ASN, "request": request()}
            ),
            422,
            "op",
        )
    refused(
        call(server, "POST", "/api/challenge", {"op": "add", "asn": ASN, "request": "x; rm -rf /"}),
        422,
        "request",
    )
    refused(
        call(server, "POST", "/api/challenge", {"op": "remove", "asn": ASN, "request": request()}),
        422,
        "request",
    )
    refused(
        call(
            server,
            "POST",
            "/api/challenge",
            {"op": "add", "asn": ASN, "request": {**request(), "interface": "eth0"}},
        ),
        422,
        "request.interface",
    )
    refused(
        call(
            server,
            "POST",
            "/api/challenge",
            {"op": "add", "asn": ASN, "request": request(), "admin": True},
        ),
        422,
        "admin",
    )
    issued = challenge(server)
    signature = tools.ssh_sign(issued["text"])
    good = {"challenge_id": issued["id"], "signature": signature, "signature_kind": "ssh"}
    for payload in [*PAYLOADS, "../" + issued["id"], issued["id"] + "/../x", 7, None]:
        refused(
            call(server, "POST", "/api/peerings", {**good, "challenge_id": payload}),
            422,
            "challenge_id",
        )
        if payload != "":
            refused(
                call(server, "POST", "/api/peerings", {**good, "signature_kind": payload}),
                422,
                "signature_kind",
            )
    for payload in ["", " ", "x\x00y", "ünïcode", 7, None]:
        refused(
            call(server, "POST", "/api/peerings", {**good, "signature": payload}), 422, "signature"
        )
    refused(
        call(server, "POST", "/api/peerings", {**good, "signature": "A" * 20000}), 413, "signature"
    )
    refused(
        call(server, "POST", "/api/peerings", {**good, "pgp_public_key": "x"}),
        422,
        "pgp_public_key",
    )
    pgp = {**good, "signature_kind": "pgp"}
    for payload in ["", "x\x00y", "ünïcode", 7, None, "A" * 40000]:
        reply = call(server, "POST", "/api/peerings", {**pgp, "pgp_public_key": payload})
        refused(reply, 413 if len(str(payload)) > 40000 - 1 else 422, "pgp_public_key")
    # None of it burnt the challenge: the honest answer still goes through.
    assert call(server, "POST", "/api/peerings", good).status == 202


# --- limits ---------------------------------------------------------------------------


def test_beyond_the_per_asn_and_total_limits_is_refused(
    config: WebConfig,
) -> None:
    tools.status_file(config.state_dir, ASN, {"state": "applied", "peers": [{"name": f"ap{ASN}"}]})
    with tools.running(config) as server:
        refused(
            call(server, "POST", "/api/challenge", {"op": "add", "asn": ASN, "request": request()}),
            409,
            "asn",
        )
    with tools.running(replace(config, max_peers=1)) as server:
        refused(
            call(
                server,
                "POST",
                "/api/challenge",
                {"op": "add", "asn": OTHER_ASN, "request": request(OTHER_ASN)},
            ),
            409,
            "",
        )
    (config.state_dir / "status" / f"{ASN}.json").unlink()
    # Spooled adds count before the apply unit answers: a burst cannot pass the limit.
    with tools.running(replace(config, max_peers=1)) as server:
        issued = challenge(server)
        assert submit(server, issued, tools.ssh_sign(issued["text"])).status == 202
        refused(
            call(
                server,
                "POST",
                "/api/challenge",
                {"op": "add", "asn": OTHER_ASN, "request": request(OTHER_ASN)},
            ),
            409,
            "",
        )


def test_an_unknown_asn_is_refused(server: AutopeerServer) -> None:
    refused(
        call(
            server,
            "POST",
            "/api/challenge",
            {"op": "add", "asn": 4242421234, "request": request(4242421234)},
        ),
        422,
        "asn",
    )


def test_rate_limits_per_client_per_asn_and_in_total(config: WebConfig) -> None:
    body = {"op": "add", "asn": ASN, "request": request()}
    with tools.running(replace(config, rate_limit=3)) as server:
        for _ in range(3):
            assert call(server, "POST", "/api/challenge", body).status == 200
        reply = call(server, "POST", "/api/challenge", body)
        refused(reply, 429, "")
        assert int(reply.headers["retry-after"]) >= 1
        # A bad request counts as well: the limit is met before any work.
        refused(call(server, "POST", "/api/challenge", {}), 429, "")
    # Behind a trusted proxy each X-Forwarded-For address is a client of its own;
    # one ASN asked for by many is still limited, and so is everyone together.
    with tools.running(replace(config, rate_limit=100, asn_rate_limit=2), ("127.0.0.1",)) as server:
        for n in range(2):
            assert (
                call(
                    server,
                    "POST",
                    "/api/challenge",
                    body,
                    headers={"X-Forwarded-For": f"192.0.2.{n}"},
                ).status
                == 200
            )
        refused(
            call(server, "POST", "/api/challenge", body, headers={"X-Forwarded-For": "192.0.2.9"}),
            429,
            "",
        )
        other = {"op": "add", "asn": OTHER_ASN, "request": request(OTHER_ASN)}
        assert (
            call(
                server, "POST", "/api/challenge", other, headers={"X-Forwarded-For": "192.0.2.9"}
            ).status
            == 200
        )
    with tools.running(
        replace(config, rate_limit=100, total_rate_limit=2), ("127.0.0.1",)
    ) as server:
        for n in range(2):
            call(
                server,
                "POST",
                "/api/challenge",
                body,
                headers={"X-Forwarded-For": f"2001:db8:{n}::1"},
            )
        refused(
            call(
                server, "POST", "/api/challenge", body, headers={"X-Forwarded-For": "2001:db8:9::1"}
            ),
            429,
            "",
        )
    # Without trust the header is the client's word and changes nothing.
    with tools.running(replace(config, rate_limit=1)) as server:
        call(server, "POST", "/api/challenge", body, headers={"X-Forwarded-For": "192.0.2.1"})
        refused(
            call(server, "POST", "/api/challenge", body, headers={"X-Forwarded-For": "192.0.2.2"}),
            429,
            "",
        )


# --- HTTP-level junk --------------------------------------------------------------------


def test_bodies_that_are_not_small_json_objects_are_refused(server: AutopeerServer) -> None:
    refused(call(server, "POST", "/api/challenge", raw=b"{" * 70000), 413, "")
    refused(call(server, "POST", "/api/challenge", raw=b"not json"), 400, "")
    refused(call(server, "POST", "/api/challenge", raw=b"[1, 2]"), 400, "")
    refused(call(server, "POST", "/api/challenge", raw=b'{"op": "add", "op": "remove"}'), 400, "")
    refused(call(server, "POST", "/api/challenge", raw=b'{"asn": NaN}'), 400, "")
    refused(call(server, "POST", "/api/challenge", raw=b"[" * 60000 + b"]" * 60000), 413, "")
    refused(call(server, "POST", "/api/challenge", raw=b"[" * 30000 + b"]" * 30000), 400, "")
    refused(call(server, "POST", "/api/challenge", raw=b'{"op": "\xff"}'), 400, "")
    refused(
        call(server, "POST", "/api/challenge", raw=b"{}", headers={"Content-Type": "text/plain"}),
        415,
        "",
    )
    refused(call(server, "GET", "/api/nothing"), 404, "")
    refused(call(server, "POST", "/api/nothing", {}), 404, "")
    refused(call(server, "PUT", "/api/challenge", {}), 405, "")
    refused(call(server, "DELETE", f"/api/peerings/{ASN}"), 405, "")


def test_raw_http_junk_gets_json_errors(server: AutopeerServer) -> None:
    host, port = server.server_address[:2]
    for raw in [
        b"POST /api/challenge HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /api/challenge HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\r\n",
        b"POST /api/challenge HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"GARBAGE <script> \x00\r\n\r\n",
        b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + b"X: " + b"y" * 70000 + b"\r\n\r\n",
    ]:
        with socket.create_connection((host, port), timeout=10) as connection:
            connection.sendall(raw)
            reply = b""
            while chunk := connection.recv(65536):
                reply += chunk
                if b"\r\n\r\n" in reply and reply.rstrip().endswith(b"}"):
                    break
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.split()[1][:1] == b"4", reply[:200]
        assert b"Content-Type: application/json" in head, head
        data = json.loads(body)
        assert set(data) == {"error", "field"}
        assert b"<script>" not in body and b"Traceback" not in body


def test_status_reads_only_status_files(
    server: AutopeerServer, config: WebConfig, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text('{"private_key": "x"}')
    (config.status / f"{OTHER_ASN}.json").symlink_to(secret)
    refused(call(server, "GET", f"/api/peerings/{OTHER_ASN}"), 404, "asn")
    (config.status / "1.json").write_text("[1, 2]")
    refused(call(server, "GET", "/api/peerings/1"), 404, "asn")
    for path in [
        "/api/peerings/../../etc/passwd",
        "/api/peerings/%2e%2e%2fsecret",
        "/api/peerings/-1",
        "/api/peerings/99999999999",
        "/api/peerings/%EF%BC%91%EF%BC%92",
        "/api/peerings/",
    ]:
        refused(call(server, "GET", path), 404, "asn")


def test_the_page_is_served_with_a_strict_csp(server: AutopeerServer) -> None:
    reply = call(server, "GET", "/")
    assert reply.status == 200 and reply.headers["content-type"] == "text/html; charset=utf-8"
    csp = reply.headers["content-security-policy"]
    assert (
        "default-src 'none'" in csp
        and "'unsafe-inline'" not in csp
        and "frame-ancestors 'none'" in csp
    )
    assert reply.headers["x-content-type-options"] == "nosniff"
    page = reply.body.decode()
    assert "http://" not in page and "https://" not in page and "innerHTML" not in page
    assert "src=" not in page and "<link" not in page


def test_serve_command_listens_and_answers(tmp_path: Path) -> None:
    code = (
        "import typer; from ibgp_tunnel.autopeer.serve import serve_command; "
        "typer.run(serve_command)"
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            code,
            "--state-dir",
            str(tmp_path / "state"),
            "--listen-port",
            "0",
            "--host-name",
            "rr.test",
            "--registry",
            str(tools.REGISTRY),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:"), line
        port = int(line.rsplit(":", 1)[1].strip("/\n"))
        fake = type("S", (), {"server_address": ("127.0.0.1", port)})()
        reply = call(
            fake, "POST", "/api/challenge", {"op": "add", "asn": ASN, "request": request()}
        )  # type: ignore[arg-type]
        assert reply.status == 200 and "rr.test" in reply.json["text"]
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_one_challenge_answered_at_once_many_times_is_spooled_once(
    server: AutopeerServer, config: WebConfig
) -> None:
    issued = challenge(server)
    signature = tools.ssh_sign(issued["text"])
    body = {"challenge_id": issued["id"], "signature": signature, "signature_kind": "ssh"}
    with ThreadPoolExecutor(max_workers=6) as pool:
        replies = list(pool.map(lambda _: call(server, "POST", "/api/peerings", body), range(6)))
    assert sorted(r.status for r in replies) == [202, 409, 409, 409, 409, 409]
    assert len(tools.spool_entries(config.state_dir)) == 1


def test_a_signature_of_another_kind_than_said_is_refused(
    server: AutopeerServer, config: WebConfig
) -> None:
    issued = challenge(server)
    body = {
        "challenge_id": issued["id"],
        "signature": tools.ssh_sign(issued["text"]),
        "signature_kind": "pgp",
        "pgp_public_key": signers.public_key(),
    }
    refused(call(server, "POST", "/api/peerings", body), 422, "signature_kind")
    body = {"challenge_id": issued["id"], "signature": tools.pgp_sign(issued["text"])}
    refused(
        call(server, "POST", "/api/peerings", {**body, "signature_kind": "ssh"}),
        422,
        "signature_kind",
    )
    assert tools.spool_entries(config.state_dir) == []


def test_an_unknown_key_is_named_only_when_it_looks_like_a_name(server: AutopeerServer) -> None:
    for key in ["<script>x</script>", "a\nb", "x" * 100, "ÄÖ"]:
        body = {"op": "add", "asn": ASN, "request": request(), key: 1}
        error = refused(call(server, "POST", "/api/challenge", body), 422, "(unknown field)")
        assert key not in error
        body = {"op": "add", "asn": ASN, "request": {**request(), key: 1}}
        refused(call(server, "POST", "/api/challenge", body), 422, "request.(unknown field)")


def test_connections_beyond_the_cap_get_a_busy_answer(config: WebConfig) -> None:
    with tools.running(config, max_connections=2) as server:
        idle = [socket.create_connection(server.server_address[:2]) for _ in range(2)]
        try:
            # Both slots are held by clients that send nothing.
            busy = call(server, "GET", f"/api/peerings/{ASN}")
            for _ in range(100):
                if busy.status == 503:
                    break
                busy = call(server, "GET", f"/api/peerings/{ASN}")
            refused(busy, 503, "")
        finally:
            for connection in idle:
                connection.close()
        # Their threads end with the connections; then the service answers again.
        for _ in range(200):
            reply = call(server, "GET", f"/api/peerings/{ASN}")
            if reply.status != 503:
                break
            time.sleep(0.05)
        refused(reply, 404, "asn")


@needs_nix
def test_with_the_hosts_spec_the_core_refuses_before_a_challenge(
    config: WebConfig, tmp_path: Path
) -> None:
    spec = core_tests.spec_file(core_tests.write_plan(tmp_path))
    with tools.running(replace(config, spec_file=spec)) as server:
        for overrides, field in [
            ({"public_key": core_tests.STATIC_KEY}, "public_key"),  # the static peer's
            ({"neighbor": "FE80:0:0::38"}, "neighbor"),  # our own link-local
            ({"peer_ipv4": "172.23.101.1"}, "peer_ipv4"),  # ours
            ({"neighbor": "fd00::1"}, "neighbor"),  # not link-local
        ]:
            body = {"op": "add", "asn": ASN, "request": request(**overrides)}
            refused(call(server, "POST", "/api/challenge", body), 422, f"request.{field}")
        assert challenge(server)["text"]


def test_a_refused_post_ends_its_connection_and_a_stalled_body_times_out(
    config: WebConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ibgp_tunnel.autopeer.server.Handler.timeout", 1)
    with tools.running(replace(config, rate_limit=1)) as server:
        call(server, "POST", "/api/challenge", {})
        # Refused before its body is read: the body must not be taken for a request.
        body = b'{"op": "add"}'
        smuggled = b"GET /api/peerings/1 HTTP/1.1\r\nHost: x\r\n\r\n"
        head = (
            b"POST /api/challenge HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        )
        with socket.create_connection(server.server_address[:2], timeout=10) as connection:
            connection.sendall(head + body + smuggled)
            reply = b""
            while chunk := connection.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 429 ") and b"Connection: close" in reply
        assert reply.count(b"HTTP/1.1 ") == 1, reply
    with tools.running(config) as server:
        with socket.create_connection(server.server_address[:2], timeout=10) as connection:
            connection.sendall(
                b"POST /api/challenge HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100\r\n\r\n{"
            )
            reply = b""
            while chunk := connection.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 408 "), reply
        assert json.loads(reply.partition(b"\r\n\r\n")[2])["field"] == ""

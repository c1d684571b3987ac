"""The autopeer page in a real headless Chromium (Debian's), driven over the
DevTools protocol on a pipe: load the page, ask for a challenge, sign the text
the page shows with the test key (ssh-keygen -Y sign), paste the signature,
submit, and see the status the apply unit's status file gives (pending, then
applied). A refusal is shown as text, and markup in it stays text."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import autopeertools as tools
import cdp
import pytest
from autopeertools import ASN

from ibgp_tunnel.autopeer.server import AutopeerServer
from ibgp_tunnel.autopeer.web import WebConfig

pytestmark = pytest.mark.skipif(
    cdp.executable() is None, reason="chromium is not installed (apt: chromium)"
)


@pytest.fixture
def config(tmp_path: Path) -> WebConfig:
    return WebConfig(state_dir=tools.state_dir(tmp_path), host_name="rr.test")


@pytest.fixture
def server(config: WebConfig) -> Iterator[AutopeerServer]:
    with tools.running(config) as server:
        yield server


@pytest.fixture
def browser() -> Iterator[cdp.Browser]:
    browser = cdp.Browser()
    try:
        yield browser
    finally:
        browser.close()


def url(server: AutopeerServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}/"


def fill_request(browser: cdp.Browser, asn: str) -> None:
    browser.type_into("#asn", asn)
    browser.type_into("#public_key", tools.WG_KEY)
    browser.type_into("#neighbor", "fe80::999")
    browser.type_into("#mtu", "1400")


def csp_violations(browser: cdp.Browser) -> list[str]:
    texts = [json.dumps(event.get("params", {})) for event in browser.events]
    return [text for text in texts if "Content Security Policy" in text]


def test_the_whole_flow_in_headless_chromium(
    server: AutopeerServer,
    config: WebConfig,
    browser: cdp.Browser,
) -> None:
    browser.navigate(url(server))
    assert browser.evaluate("document.title") == "DN42 self-service peering"
    assert browser.evaluate("document.getElementById('sign-form').hidden") is True
    fill_request(browser, f"AS{ASN}")
    browser.click("#get-challenge")
    text = browser.wait_for("document.getElementById('challenge-text').textContent")
    assert f"asn: AS{ASN}" in text and "host: rr.test" in text
    assert browser.text("#sign-command").startswith("ssh-keygen -Y sign -n dn42-autopeer")

    # A signature by a key the maintainer does not list: refused, shown, nothing spooled.
    browser.type_into("#signature", tools.ssh_sign(text, tools.THEIRS))
    browser.click("#submit")
    error = browser.wait_for("document.getElementById('error').textContent")
    assert "maintainer" in error and "(field: signature)" in error
    assert tools.spool_entries(config.state_dir) == []

    # The shown text, signed with the maintainer's key, pasted and submitted.
    browser.evaluate("document.getElementById('signature').value = ''")
    browser.type_into("#signature", tools.ssh_sign(text))
    browser.click("#submit")
    assert browser.wait_for("document.getElementById('status-state').textContent === 'pending'")
    assert browser.text("#error") == ""
    [entry] = tools.spool_entries(config.state_dir)
    assert entry["asn"] == ASN and entry["request"] == tools.request(mtu=1400)
    assert entry["challenge"]["text"] == text

    # The apply unit answers in the status file; the page polls it.
    applied = {"state": "applied", "peers": [{"name": f"ap{ASN}", "listen_port": 20999}]}
    tools.status_file(config.state_dir, ASN, applied)
    assert browser.wait_for("document.getElementById('status-state').textContent === 'applied'")
    details = json.loads(browser.text("#status-details"))
    assert details == {"asn": ASN, **applied}
    assert csp_violations(browser) == []


def test_a_refusal_is_shown_as_text_never_as_markup(
    server: AutopeerServer, browser: cdp.Browser
) -> None:
    browser.navigate(url(server))
    fill_request(browser, str(ASN))
    markup = '<img src=x id=injected onerror="document.title=1">'
    browser.type_into("#public_key", markup)
    browser.click("#get-challenge")
    error = browser.wait_for("document.getElementById('error').textContent")
    assert "(field: request.public_key)" in error
    assert browser.evaluate("document.querySelectorAll('img, #injected').length") == 0
    assert browser.evaluate("document.title") == "DN42 self-service peering"
    # An ASN nobody holds: the registry's answer, as text.
    browser.evaluate("document.getElementById('asn').value = ''")
    browser.evaluate("document.getElementById('public_key').value = ''")
    browser.type_into("#public_key", tools.WG_KEY)
    browser.type_into("#asn", "4242421234")
    browser.evaluate("document.getElementById('error').textContent = ''")
    browser.click("#get-challenge")
    error = browser.wait_for("document.getElementById('error').textContent")
    assert "AS4242421234" in error and "(field: asn)" in error
    assert csp_violations(browser) == []

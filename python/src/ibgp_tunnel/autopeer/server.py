"""The autopeer web service over HTTP (stdlib ThreadingHTTPServer), for the
host's reverse proxy: the page at `/`, the JSON API under `/api/`.

    POST /api/challenge  {op, asn, request}          -> 200 {id, text, expires, sign_command}
    POST /api/peerings   {challenge_id, signature, signature_kind, pgp_public_key?}
                                                     -> 202 {asn, op, status: "pending"}
    GET  /api/peerings/<asn>                         -> 200 the status file's content

Every error is JSON `{error, field}` with a 4xx status (a 500 says only that
something failed; the details go to the service's log, never to the client).
Bodies: JSON objects only, at most MAX_BODY bytes, with a Content-Length."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import ipaddress
import json
import re
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

from ibgp_tunnel.autopeer.ratelimit import client_key
from ibgp_tunnel.autopeer.web import Refusal, Web

MAX_BODY = 64 * 1024
# A slow client holds a thread for at most this long per read.
SOCKET_TIMEOUT = 10
# Connections served at once (each holds a thread).
MAX_CONNECTIONS = 64
_BUSY_BODY = b'{"error": "the service is busy; try again in a few seconds", "field": ""}\n'
BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Content-Length: " + str(len(_BUSY_BODY)).encode() + b"\r\nRetry-After: 5\r\n"
    b"Connection: close\r\n\r\n" + _BUSY_BODY
)
# The page loads nothing from elsewhere and runs only its own inline script.
CSP = (
    "default-src 'none'; script-src 'sha256-{script}'; style-src 'sha256-{style}'; "
    "connect-src 'self'; img-src 'none'; form-action 'none'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


@cache
def page() -> tuple[bytes, str]:
    """page.html and its Content-Security-Policy (the hashes of its inline script
    and style, so nothing else can run or style it)."""
    text = resources.files("ibgp_tunnel.autopeer").joinpath("page.html").read_text("utf-8")
    return text.encode(), CSP.format(
        script=_inline_hash(text, "script"), style=_inline_hash(text, "style")
    )


def _inline_hash(text: str, tag: str) -> str:
    match = re.search(rf"<{tag}>(.*?)</{tag}>", text, re.S)
    if match is None:
        raise ValueError(f"page.html has no <{tag}>")
    return base64.b64encode(hashlib.sha256(match.group(1).encode()).digest()).decode()


class Handler(BaseHTTPRequestHandler):
    server: AutopeerServer
    server_version = "ibgp-tunnel-autopeer"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = SOCKET_TIMEOUT
    _consumed = False

    def version_string(self) -> str:
        return self.server_version

    # --- routing ------------------------------------------------------------
    def do_GET(self) -> None:
        self._run(self._get)

    def do_HEAD(self) -> None:
        self._run(self._get, head=True)

    def do_POST(self) -> None:
        self._run(self._post)

    def _method_not_allowed(self) -> None:
        self._run(self._not_allowed)

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _method_not_allowed

    def _get(self, now: float) -> tuple[int, Any]:
        path = self.path.split("?", 1)[0]
        self.server.web.admit_read(self._client(), now)
        if path in ("/", "/index.html"):
            return 200, page()
        if path.startswith("/api/peerings/"):
            return 200, self.server.web.status(path[len("/api/peerings/") :])
        raise Refusal(
            404,
            "no such page; the API is POST /api/challenge, POST /api/peerings, "
            "GET /api/peerings/<asn>",
            "",
        )

    def _post(self, now: float) -> tuple[int, Any]:
        path = self.path.split("?", 1)[0]
        if path not in ("/api/challenge", "/api/peerings"):
            raise Refusal(404, "no such endpoint; POST /api/challenge or /api/peerings", "")
        self.server.web.admit(self._client(), now)
        body = self._body()
        if path == "/api/challenge":
            return 200, self.server.web.challenge(body, now)
        return 202, self.server.web.submit(body, now)

    def _not_allowed(self, now: float) -> tuple[int, Any]:
        raise Refusal(405, "method not allowed: the API takes GET and POST", "")

    # --- one request, whatever happens ---------------------------------------
    def _run(self, route: Any, head: bool = False) -> None:
        self._consumed = False
        try:
            status, payload = route(self.server.clock())
        except Refusal as refusal:
            if self.command == "POST" and not self._consumed:
                # The unread body would be taken for the next request: this
                # connection ends with the answer.
                self.close_connection = True
            self._json(
                refusal.status,
                {"error": refusal.message, "field": refusal.field},
                refusal.retry_after,
                head,
            )
            return
        except Exception:
            traceback.print_exc(file=sys.stderr)
            self._json(
                500,
                {"error": "internal error; the operator's log has the details", "field": ""},
                0,
                head,
            )
            return
        if isinstance(payload, tuple):
            body, csp = payload
            self._send(
                status, body, "text/html; charset=utf-8", {"Content-Security-Policy": csp}, head
            )
        else:
            self._json(status, payload, 0, head)

    def _body(self) -> dict[str, Any]:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise Refusal(411, "send the body with a Content-Length, not chunked", "")
        length_text = self.headers.get("Content-Length")
        if length_text is None or not length_text.isascii() or not length_text.isdigit():
            self.close_connection = True
            raise Refusal(411, "a Content-Length is required", "")
        length = int(length_text)
        if length > MAX_BODY:
            # Not read: the connection is closed instead.
            self.close_connection = True
            raise Refusal(413, f"the body is larger than {MAX_BODY} bytes", "")
        try:
            raw = self.rfile.read(length)
        except OSError:  # the socket's timeout: a client that stopped sending
            self.close_connection = True
            raise Refusal(408, "the body did not arrive in time", "") from None
        self._consumed = len(raw) == length
        media = self.headers.get_content_type()
        if media != "application/json":
            raise Refusal(415, "send JSON (Content-Type: application/json)", "")
        try:
            body = json.loads(
                raw.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant
            )
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise Refusal(400, "the body is not a JSON object (UTF-8)", "") from None
        if not isinstance(body, dict):
            raise Refusal(400, "the body is not a JSON object", "")
        return body

    def _client(self) -> str:
        """The client's address: the socket's, or when the socket is a trusted
        reverse proxy, the last address it appended to X-Forwarded-For."""
        address = self.client_address[0]
        if address in self.server.trusted_proxies:
            forwarded = (self.headers.get("X-Forwarded-For") or "").split(",")[-1].strip()
            with contextlib.suppress(ValueError):
                address = str(ipaddress.ip_address(forwarded))
        return client_key(address)

    # --- responses -----------------------------------------------------------
    def _json(self, status: int, payload: Any, retry_after: float, head: bool) -> None:
        body = (json.dumps(payload, ensure_ascii=True, indent=1) + "\n").encode()
        extra = {"Retry-After": str(int(retry_after) + 1)} if retry_after else {}
        self._send(status, body, "application/json", extra, head)

    def _send(
        self, status: int, body: bytes, media: str, extra: dict[str, str], head: bool
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", media)
        self.send_header("Content-Length", str(len(body)))
        for name, value in {**HEADERS, **extra}.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (a malformed request line, a header too long)
        as JSON too, without echoing the request."""
        self.close_connection = True
        # An unparsable request line leaves HTTP/0.9, which would drop the status
        # line and the headers: the answer is HTTP/1.1 whatever was asked.
        self.request_version = self.protocol_version
        reason = self.responses.get(code, ("error",))[0]
        with contextlib.suppress(OSError):
            self._json(code, {"error": f"bad request: {reason}", "field": ""}, 0, False)

    def log_message(self, format: str, *args: Any) -> None:
        # The request line is the stranger's text: logged escaped, one line.
        text = (format % args).encode("ascii", "backslashreplace").decode()
        sys.stderr.write(f"{self.address_string()} {text[:300]!r}\n")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError("duplicate key")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class AutopeerServer(ThreadingHTTPServer):
    daemon_threads = True
    # Connections waiting to be accepted beyond this are refused by the kernel.
    request_queue_size = 64

    def __init__(
        self,
        address: tuple[str, int],
        web: Web,
        trusted_proxies: Iterable[str] = (),
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)
        self.web = web
        self.trusted_proxies = frozenset(trusted_proxies)
        # Seconds since the epoch; a test moves it to expire a challenge.
        self.clock: Callable[[], float] = time.time
        # One thread per connection, at most this many: idle or slow clients
        # cannot make the service start threads without bound.
        self._slots = threading.BoundedSemaphore(max_connections)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.settimeout(1)
                request.sendall(BUSY)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

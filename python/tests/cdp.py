"""A headless Chromium driven over the Chrome DevTools Protocol on
`--remote-debugging-pipe` (the browser reads commands on its fd 3 and writes
replies and events on its fd 4, each a JSON message ended by a NUL byte): the
standard library only, no WebDriver, no websocket."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

# Long enough for a slow, shared machine; a wait that runs out fails the test.
DEADLINE = 60.0


class CdpError(Exception):
    pass


class Browser:
    """One headless Chromium with one page attached (flat session)."""

    def __init__(self, executable: str | None = None) -> None:
        executable = executable or shutil.which("chromium")
        if executable is None:
            raise FileNotFoundError("chromium is not installed (apt: chromium)")
        self._profile = tempfile.TemporaryDirectory(prefix="cdp-profile-")
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()
        flags = [
            "--headless=new",
            "--remote-debugging-pipe",
            f"--user-data-dir={self._profile.name}",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-gpu",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--metrics-recording-only",
            "--password-store=basic",
            "--use-mock-keychain",
        ]
        # Chromium's sandbox needs user namespaces root does not get here.
        if os.geteuid() == 0:
            flags.append("--no-sandbox")
        # bash (dash takes one-digit fds only) puts the pipes on the fds the
        # protocol names, then becomes chromium.
        command = f'exec "$0" "$@" 3<&{to_browser_read} 4>&{from_browser_write}'
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        self.process = subprocess.Popen(
            ["bash", "-c", command, executable, *flags, "about:blank"],
            pass_fds=(to_browser_read, from_browser_write),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
        )
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        self.session = ""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")

    # --- the protocol -----------------------------------------------------------
    def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if self.session:
            message["sessionId"] = self.session
        try:
            os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        except BrokenPipeError:
            raise CdpError(f"chromium is gone: {self.output()[-2000:]}") from None
        while True:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise CdpError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            self.events.append(reply)

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise CdpError(f"chromium closed the pipe: {self.output()[-2000:]}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        data: dict[str, Any] = json.loads(message)
        return data

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    # --- the page ----------------------------------------------------------------
    def navigate(self, url: str) -> None:
        self.send("Page.navigate", {"url": url})
        self.wait_for("document.readyState === 'complete' && location.href === " + json.dumps(url))

    def evaluate(self, expression: str) -> Any:
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            raise CdpError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, deadline: float = DEADLINE) -> Any:
        """The expression's value once it is truthy (polled), or CdpError at the deadline."""
        end = time.monotonic() + deadline
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > end:
                raise CdpError(f"still false after {deadline} s: {expression}")
            time.sleep(0.1)

    def type_into(self, selector: str, text: str) -> None:
        """Focus an element and insert text as a paste or an IME would."""
        self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        self.send("Input.insertText", {"text": text})

    def click(self, selector: str) -> None:
        """A real mouse click at the element's centre."""
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " e.scrollIntoView(); const r = e.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.send(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": box[0], "y": box[1], "button": "left", "clickCount": 1},
            )

    def text(self, selector: str) -> str:
        return str(self.evaluate(f"document.querySelector({json.dumps(selector)}).textContent"))

    def close(self) -> None:
        try:
            self.session = ""
            self.send("Browser.close")
        except (CdpError, OSError):
            pass
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for fd in (self._to_browser, self._from_browser):
            os.close(fd)
        self._log.close()
        self._profile.cleanup()


def executable() -> Path | None:
    found = shutil.which("chromium")
    return Path(found) if found else None

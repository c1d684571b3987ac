"""A stand-in for the NixOS test driver's machine API, so a VM test's
testScript runs unchanged against something other than VMs (here: the
namespace lab, through a `Backend` that checks/run/vm.py provides).

Names and semantics follow nixpkgs' nixos/lib/test-driver (machine/__init__.py):
commands run as `bash -c 'set -euo pipefail; CMD'` under `timeout`;
`succeed`/`fail` take several commands and raise on the wrong exit status;
`execute` returns (status, output); `wait_until_succeeds`/`wait_until_fails`
retry once a second up to `timeout` (900 s by default); `wait_for_unit`
waits for the unit to be active. What only a VM can do (reboot, crash,
shutdown) raises NeedsVM, which `subtest` records instead of failing.
"""

from __future__ import annotations

import ast
import contextlib
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol


class RequestedAssertionFailed(AssertionError):
    """What the real driver raises when a machine call's condition does not hold."""


class NeedsVM(Exception):
    """A call only a real VM can carry out; the message says what it needs."""


class Backend(Protocol):
    """What the machines run on."""

    def start_all(self) -> None: ...

    def argv(self, machine: str, script: str) -> list[str]: ...

    def translate(self, machine: str, command: str) -> tuple[str, str | None]:
        """The command to run for `command`, and a note when it was mapped."""
        ...

    def unit_active(self, machine: str, unit: str) -> tuple[bool, str | None]:
        """Whether the lab's equivalent of `unit` runs, and a note on the mapping."""
        ...

    def systemctl(self, machine: str, verb: str, unit: str) -> tuple[int, str, str]:
        """(status, output, note) of `systemctl VERB UNIT` on the lab's equivalent."""
        ...


@dataclass
class Outcome:
    title: str
    notes: list[str] = field(default_factory=list)
    needs_vm: str | None = None
    error: str | None = None

    @property
    def status(self) -> str:
        if self.error is not None:
            return "FAILED"
        if self.needs_vm is not None:
            return "needs a real VM"
        return "mapped to lab equivalent" if self.notes else "ran on lab"


@dataclass
class Run:
    """What happened, per subtest (commands outside any subtest go to "(setup)")."""

    outcomes: list[Outcome] = field(default_factory=list)
    current: Outcome = field(default_factory=lambda: Outcome("(setup)"))
    log: Callable[[str], None] = print

    def note(self, text: str) -> None:
        if text not in self.current.notes:
            self.current.notes.append(text)
            self.log(f"    mapped: {text}")


def retry(fn: Callable[[bool], bool], timeout_seconds: float = 900) -> None:
    """As the driver's: call `fn` once a second until it holds, then once more, last."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_seconds:
        if fn(False):
            return
        time.sleep(1)
    if not fn(True):
        raise RequestedAssertionFailed(
            f"action timed out after {time.monotonic() - start:.2f} seconds "
            f"(timeout={timeout_seconds})"
        )


class Machine:
    def __init__(self, name: str, backend: Backend, run: Run) -> None:
        self.name = name
        self._backend = backend
        self._run = run

    def __repr__(self) -> str:
        return f"<Machine '{self.name}' (lab)>"

    def log(self, msg: str) -> None:
        self._run.log(f"{self.name}: {msg}")

    # --- commands -------------------------------------------------------------------

    def execute(
        self,
        command: str,
        check_return: bool = True,
        check_output: bool = True,
        timeout: int | None = 900,
    ) -> tuple[int, str]:
        command, note = self._backend.translate(self.name, command)
        if note:
            self._run.note(f"{self.name}: {note}")
        verb_unit = _systemctl_verb(command)
        if verb_unit is not None:
            status, out, note = self._backend.systemctl(self.name, *verb_unit)
            self._run.note(f"{self.name}: systemctl {' '.join(verb_unit)} -> {note}")
            return status, out
        script = f"set -euo pipefail; {command}"
        argv = self._backend.argv(self.name, script)
        if timeout is not None:
            argv = ["timeout", str(timeout), *argv]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        return proc.returncode, proc.stdout

    def succeed(self, *commands: str, timeout: int | None = None) -> str:
        output = ""
        for command in commands:
            status, out = self.execute(command, timeout=timeout)
            if status != 0:
                self.log(f"output: {out}")
                raise RequestedAssertionFailed(f"command `{command}` failed (exit code {status})")
            output += out
        return output

    def fail(self, *commands: str, timeout: int | None = None) -> str:
        output = ""
        for command in commands:
            status, out = self.execute(command, timeout=timeout)
            if status == 0:
                raise RequestedAssertionFailed(f"command `{command}` unexpectedly succeeded")
            output += out
        return output

    def wait_until_succeeds(self, command: str, timeout: int = 900) -> str:
        output = ""

        def check(_last: bool) -> bool:
            nonlocal output
            status, output = self.execute(command, timeout=timeout)
            return status == 0

        retry(check, timeout)
        return output

    def wait_until_fails(self, command: str, timeout: int = 900) -> str:
        output = ""

        def check(_last: bool) -> bool:
            nonlocal output
            status, output = self.execute(command, timeout=timeout)
            return status != 0

        retry(check, timeout)
        return output

    def sleep(self, secs: int) -> None:
        self.succeed(f"sleep {secs}")

    def wait_for_file(self, filename: str, timeout: int = 900) -> None:
        retry(lambda _last: self.execute(f"test -e {filename}")[0] == 0, timeout)

    def wait_for_open_port(self, port: int, addr: str = "localhost", timeout: int = 900) -> None:
        retry(lambda _last: self.execute(f"nc -z {addr} {port}")[0] == 0, timeout)

    def wait_for_closed_port(self, port: int, addr: str = "localhost", timeout: int = 900) -> None:
        retry(lambda _last: self.execute(f"nc -z {addr} {port}")[0] != 0, timeout)

    # --- units ------------------------------------------------------------------------

    def systemctl(self, q: str, user: str | None = None) -> tuple[int, str]:
        if user is not None:
            raise NeedsVM(f"systemctl --user {q} (user units)")
        return self.execute(f"systemctl {q}")

    def start_job(self, jobname: str, user: str | None = None) -> tuple[int, str]:
        return self.systemctl(f"start {jobname}", user)

    def stop_job(self, jobname: str, user: str | None = None) -> tuple[int, str]:
        return self.systemctl(f"stop {jobname}", user)

    def wait_for_unit(self, unit: str, user: str | None = None, timeout: int = 900) -> None:
        if user is not None:
            raise NeedsVM(f"user unit {unit}")

        def check(_last: bool) -> bool:
            active, note = self._backend.unit_active(self.name, unit)
            if note:
                self._run.note(f"{self.name}: {unit} -> {note}")
            return active

        retry(check, timeout)

    # --- what only a VM does ----------------------------------------------------------------

    def start(self) -> None:
        pass  # start_all brings the whole lab up; a lab host is never off

    def shutdown(self) -> None:
        raise NeedsVM(f"{self.name}.shutdown() (powering a machine off)")

    def crash(self) -> None:
        raise NeedsVM(f"{self.name}.crash() (a hard reset)")

    def reboot(self) -> None:
        raise NeedsVM(f"{self.name}.reboot() (booting again)")

    def wait_for_shutdown(self) -> None:
        raise NeedsVM(f"{self.name}.wait_for_shutdown()")


def _systemctl_verb(command: str) -> tuple[str, str] | None:
    """(verb, unit) when the whole command is `systemctl start|stop|restart UNIT`."""
    words = command.split()
    if len(words) == 3 and words[0] == "systemctl" and words[1] in ("start", "stop", "restart"):
        return words[1], words[2]
    return None


def subtest_title(statement: ast.stmt) -> str | None:
    """The title of a top-level `with subtest("..."):` statement, else None."""
    if not isinstance(statement, ast.With) or len(statement.items) != 1:
        return None
    call = statement.items[0].context_expr
    if (
        isinstance(call, ast.Call)
        and isinstance(call.func, ast.Name)
        and call.func.id == "subtest"
        and call.args
        and isinstance(call.args[0], ast.Constant)
        and isinstance(call.args[0].value, str)
    ):
        return call.args[0].value
    return None


def run_script(script: str, backend: Backend, machines: list[str], run: Run) -> None:
    """Run a testScript with one Machine per name, recording in `run` what happened
    per subtest; the first failure stops the script and is raised, as in the driver."""
    log = run.log
    names: dict[str, Any] = {}

    @contextlib.contextmanager
    def subtest(title: str) -> Iterator[None]:
        outcome = Outcome(title)
        run.outcomes.append(outcome)
        run.current = outcome
        log(f"subtest: {title}")
        try:
            yield
        except NeedsVM as exc:
            outcome.needs_vm = str(exc)
            log(f"    needs a real VM: {exc}")
        except BaseException as exc:
            outcome.error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            run.current = Outcome("(between subtests)")

    handles = {name: Machine(name, backend, run) for name in machines}
    names.update(handles)
    names.update(
        {
            "machines": list(handles.values()),
            "start_all": backend.start_all,
            "subtest": subtest,
            "log": log,
            "retry": retry,
            "__name__": "__testscript__",
        }
    )
    run.outcomes.append(run.current)
    # Running a test script is this module's whole point.
    exec(compile(script, "<testScript>", "exec"), names)

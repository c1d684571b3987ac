"""Self-service peering latency (issue 24: "a tunnel and a session in seconds"),
in the namespace lab.

Run as root from the repository: `python bench/autopeer_latency.py [--reps 5] [--json]`.
It brings python/tests/plans/autopeer.toml up (the reflector dmz runs the autopeer
web service and apply unit, as test_lab_autopeer_api.py) in a lab of its own, on
BIRD 3 from scripts/setup unless --bird-dir names another, with the fixture
registry (python/tests/data/autopeer-registry) and an outside DN42 router for
AS4242420999 whose test key signs. A first add starts the outside's WireGuard and
BIRD (not timed); each repetition then, through the HTTP API as a requester does:

  * asks for a challenge, signs it (`ssh-keygen -Y sign`), submits it (202);
  * polls, every 20 ms: the ASN's status file (the apply unit's answer), BIRD's
    protocol state for the peering (Established) and its routes (imported);
  * removes it the same way and polls until the interface and protocol are gone.

It prints, per repetition and as median and maximum, the seconds from the
submission's answer to: applied, Established, routes imported; and to removed.
The API's rate limit is raised for the run (a repetition sends four requests).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tomlkit
from ibgp_tunnel import planfile
from ibgp_tunnel.autopeer.signature import NAMESPACE
from ibgp_tunnel.autopeer.state import read_status
from ibgp_tunnel.lab import autopeerlab, location, netns
from ibgp_tunnel.lab.down import down
from ibgp_tunnel.lab.up import bird_socket, find_secrets_dir, start_bird, up

REPO = Path(__file__).resolve().parents[1]
PLAN = REPO / "python" / "tests" / "plans" / "autopeer.toml"
EXAMPLE_PLAN = REPO / "hosts" / "plan.toml"
REGISTRY = REPO / "python" / "tests" / "data" / "autopeer-registry"
BENCH_LAB_DIR = "/run/ibgp-tunnel-bench-autopeer-lab"
BENCH_PREFIX = "ibap-"
BIRD3_DIR = REPO / ".cache" / "bird" / "bird3" / "bin"
REFLECTOR, OUR_ASN, OUR_LINK_LOCAL = "dmz", 4242420038, "fe80::38"
ASN = 4242420999  # the fixture's signer (TEST-AUTOPEER-MNT, test-ssh-ed25519)
OUT_V4, OUT_V6 = "172.20.199.0/27", "fd42:4242:999::/48"  # its route objects
DEADLINE = 60.0
POLL = 0.02


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Bench:
    def __init__(self, lab_dir: Path, netns_name: str, url: str, tmp: Path) -> None:
        self.lab_dir, self.ns, self.url, self.tmp = lab_dir, netns_name, url, tmp
        self.state = autopeerlab.state_dir(lab_dir, REFLECTOR)
        key = tmp / "key"
        shutil.copyfile(REGISTRY / "test-ssh-ed25519", key)
        key.chmod(0o600)
        self.key = key

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return autopeerlab.call_api(self.ns, "POST", self.url + path, body)

    def sign(self, text: str) -> str:
        done = subprocess.run(
            ["ssh-keygen", "-Y", "sign", "-q", "-f", str(self.key), "-n", NAMESPACE],
            input=text.encode(),
            capture_output=True,
            check=True,
        )
        return done.stdout.decode()

    def submit(self, op: str, request: dict[str, Any] | None) -> tuple[str, float]:
        """The challenge id and the monotonic time the submission was answered (202)."""
        code, issued = self.post("/api/challenge", {"op": op, "asn": ASN, "request": request})
        if code != 200:
            raise SystemExit(f"challenge refused ({code}): {issued}")
        body = {
            "challenge_id": issued["id"],
            "signature": self.sign(issued["text"]),
            "signature_kind": "ssh",
        }
        code, answer = self.post("/api/peerings", body)
        if code != 202:
            raise SystemExit(f"submission refused ({code}): {answer}")
        return str(issued["id"]), time.monotonic()

    def answered(self, challenge: str) -> dict[str, Any] | None:
        status = read_status(self.state, ASN)
        return status if status and status.get("challenge") == challenge else None

    def birdc(self, *args: str) -> str:
        argv = [location.bird_tool("birdc"), "-s", str(bird_socket(self.lab_dir, REFLECTOR))]
        return netns.run([*argv, *args], check=False).stdout

    def links(self) -> str:
        return netns.run(["ip", "-n", self.ns, "-o", "link", "show"], check=False).stdout


def wait_for(condition: Callable[[], Any], what: str) -> Any:
    start = time.monotonic()
    while not (value := condition()):
        if time.monotonic() - start > DEADLINE:
            raise SystemExit(f"{what}: not within {DEADLINE} s")
        time.sleep(POLL)
    return value


def protocol_of(status: dict[str, Any]) -> tuple[str, str]:
    (peer,) = status["peers"]
    return str(peer["name"]), str(peer["interface"])


def one_rep(bench: Bench, request: dict[str, Any]) -> dict[str, float]:
    challenge, sent = bench.submit("add", request)
    status = wait_for(lambda: bench.answered(challenge), "the apply unit's answer")
    applied = time.monotonic() - sent
    if status["state"] != "applied":
        raise SystemExit(f"not applied: {status}")
    name, interface = protocol_of(status)
    protocol = f"dn42_{name}"
    wait_for(lambda: "Established" in bench.birdc("show", "protocols", protocol), "Established")
    established = time.monotonic() - sent

    def imported() -> bool:
        routes = bench.birdc("show", "route", "protocol", protocol)
        return OUT_V4 in routes and OUT_V6 in routes

    wait_for(imported, "its routes imported")
    routes = time.monotonic() - sent
    challenge, sent = bench.submit("remove", None)
    wait_for(lambda: (s := bench.answered(challenge)) and s["state"] == "removed", "removed")
    wait_for(
        lambda: (
            protocol not in bench.birdc("show", "protocols")
            and f" {interface}:" not in bench.links()
        ),
        "the interface and protocol gone",
    )
    removed = time.monotonic() - sent
    return {"applied": applied, "established": established, "routes": routes, "removed": removed}


def bench_plan(directory: Path) -> Path:
    data = tomlkit.parse(PLAN.read_text())
    data["hosts"]["dmz"]["autopeer"]["rate_limit"] = 1000  # type: ignore[index]
    path = directory / "autopeer.toml"
    path.write_text(tomlkit.dumps(data))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print every sample as JSON")
    parser.add_argument("--bird-dir", type=Path, default=None)
    parser.add_argument("--lab-dir", default=BENCH_LAB_DIR, help="the bench lab's state directory")
    parser.add_argument("--prefix", default=BENCH_PREFIX, help="the bench lab's namespace prefix")
    args = parser.parse_args()
    bird = location.use_bench_lab(args.lab_dir, args.prefix, args.bird_dir, BIRD3_DIR)
    os.environ.setdefault("SOPS_AGE_KEY_FILE", str(REPO / "secrets" / "test-age-key.txt"))
    os.environ[location.DN42_REGISTRY_ENV] = str(REGISTRY / "data")
    lab_dir = Path(args.lab_dir)
    down()
    samples: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="autopeer-bench-") as tmp:
        try:
            say(f"bringing the autopeer lab up ({bird})")
            plan_path = bench_plan(Path(tmp))
            plan = planfile.load(plan_path)
            st = up(
                plan_path,
                timeout=90,
                secrets_dir=find_secrets_dir(EXAMPLE_PLAN, planfile.load(EXAMPLE_PLAN)),
            )
            url = autopeerlab.api_base(plan, REFLECTOR)
            bench = Bench(lab_dir, str(st.nodes[REFLECTOR]["netns"]), url, Path(tmp))
            router = autopeerlab.add_outside(
                st, REFLECTOR, ASN, announce_ipv4=(OUT_V4,), announce_ipv6=(OUT_V6,)
            )
            request = router.request()
            # The warm-up: the outside's WireGuard and BIRD start once it knows the
            # reflector's key (the status gives it); not timed.
            challenge, _ = bench.submit("add", request)
            status = wait_for(lambda: bench.answered(challenge), "the first answer")
            (peer,) = status["peers"]
            autopeerlab.start_outside(st, router, peer, peer["public_key"], dial=False)
            config = autopeerlab.outside_bird_config(router, OUR_LINK_LOCAL, OUR_ASN)
            st.daemons.append(start_bird(lab_dir, router.node, router.netns, config))
            st.save()
            protocol = f"dn42_{peer['name']}"
            wait_for(lambda: "Established" in bench.birdc("show", "protocols", protocol), "warm-up")
            challenge, _ = bench.submit("remove", None)
            wait_for(lambda: bench.answered(challenge), "the warm-up's removal")
            for rep in range(args.reps):
                sample = one_rep(bench, request)
                samples.append(sample)
                say(f"rep {rep + 1}: " + ", ".join(f"{k} {v:.2f} s" for k, v in sample.items()))
        finally:
            down()
    if args.json:
        print(json.dumps({"bird": bird, "samples": samples}, indent=2))
        return 0
    print(f"{bird}: {len(samples)} repetitions, seconds after the submission's 202")
    print(f"{'':12} {'median':>8} {'max':>8}")
    for key in ("applied", "established", "routes", "removed"):
        values = [s[key] for s in samples]
        print(f"{key:12} {statistics.median(values):8.2f} {max(values):8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

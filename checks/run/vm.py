"""checks.vm here: the VM test's testScript (checks/vm-test.py, as vm-test.nix
hands it to the NixOS test driver, read through nix-instantiate) run unchanged
through a stand-in for the driver's machine API (nixos_test_driver.py) against
the namespace lab of the example plan, on BIRD 3 by default.

The VM test's nodes are the lab's hosts: dmz and pve (the plan's hosts, the
rendered configs), lan (pve's LAN client), web (the lab's `inet`, which holds
the announced host's address) and peer1 (the lab's DN42 peer, announcing what
the VM test's peer1 announces) and outside (the lab's outside DN42 router of
lab/autopeerlab.py with the VM test's ASN, keys, link-local address and BIRD
config; dmz runs autopeer as vm-test.nix's dmz does). Units map to the lab's
daemons; what the lab cannot show is said per subtest ("needs a real VM:
..."). Run as root, after
scripts/setup. Its own lab: $IBGP_TUNNEL_VM_LAB_DIR (/run/ibgp-tunnel-vm-lab)
and $IBGP_TUNNEL_VM_LAB_PREFIX (ibgvm-), never a lab a user has up.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import tomlkit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ibgp_tunnel import keys as wgkeys
from ibgp_tunnel import planfile
from ibgp_tunnel.lab import autopeerlab, daemons, dn42lab, faults, location, netns, state
from ibgp_tunnel.lab.down import down
from ibgp_tunnel.lab.labkeys import install_secret
from ibgp_tunnel.lab.topology import INET, build_topology
from ibgp_tunnel.lab.up import find_secrets_dir, node_dir, reconfigure_bird, start_bird, up

import nixos_test_driver as driver

REPO = Path(__file__).resolve().parents[2]
PLAN = REPO / "hosts" / "plan.toml"
VM_TEST = REPO / "checks" / "vm-test.nix"
# The ROA JSON vm-test.nix gives dmz's RTR refresh (dn42.roa.jsonUrl; RTR is the plan's).
VM_ROA_JSON = REPO / "checks" / "dn42-roa.json"
# vm-test.nix's dmz: the example's RPKI over RTR, refreshed every 10 s (its
# dn42.roa.interval): the lab runs the example plan so changed.
VM_ROA_INTERVAL = "10s"


def rtr_plan(directory: Path) -> Path:
    """The example plan (dmz on RPKI over RTR) with vm-test.nix's 10 s refresh and
    its dmz's self-service peering (services.ibgpTunnel.autopeer)."""
    data = tomlkit.parse(PLAN.read_text())
    roa = data["hosts"]["dmz"]["dn42_roa"]  # type: ignore[index]
    if roa.get("source") != "rtr":  # type: ignore[union-attr]
        raise RuntimeError("the example's dmz is not on RPKI over RTR: update checks/run/vm.py")
    roa["interval"] = VM_ROA_INTERVAL  # type: ignore[index]
    data["hosts"]["dmz"]["autopeer"] = VM_AUTOPEER  # type: ignore[index]
    path = directory / "plan.toml"
    path.write_text(tomlkit.dumps(data))
    return path


# vm-test.nix's dmz: services.ibgpTunnel.autopeer = { enable; linkLocal; registryUrl }
# (the registry: checks/autopeer-registry as a file:// git repository).
VM_AUTOPEER = {"enable": True, "link_local": "fe80::38/64"}
VM_REGISTRY = REPO / "checks" / "autopeer-registry"
# vm-test.nix's outside node: its keys (test-only, in secrets/) and services.bird.config.
VM_OUTSIDE_WG_KEY = REPO / "secrets" / "test-autopeer-outside-wireguard-key.txt"
VM_OUTSIDE_SSH_KEY = REPO / "secrets" / "test-autopeer-outside-ssh-ed25519"
VM_OUTSIDE_BIRD = """\
router id 192.168.1.251;
protocol device {{ }}
protocol static {{
  ipv6;
  route {v6} unreachable;
}}
protocol bgp dmz {{
  local as {asn};
  neighbor fe80::38 as 4242420038;
  interface "wg0";
  ipv4 {{ import none; export none; extended next hop on; }};
  ipv6 {{ import none; export all; }};
}}
"""
BIRD3 = REPO / ".cache" / "bird" / "bird3" / "bin"
EXPORTER_PORT = 9324
WG_EXPORTER = "prometheus-wireguard-exporter"
# What no lab shows, whatever the subtests say.
ONLY_A_VM = (
    "NixOS booting the module's configuration (systemd units, their order and ExecStop "
    "scripts, sops-nix decrypting the test secrets during activation), the firewall "
    "NixOS itself builds (the lab loads a copy of firewall-nftables.nix's table), "
    "prometheus-wireguard-exporter (not packaged here), QEMU's VLANs instead of veth pairs"
)
_WG_METRIC = re.compile(
    r"curl -sf http://127\.0\.0\.1:9586/metrics \| grep -E "
    r"'\^wireguard_latest_handshake_seconds\[\{\]\.\*"
    r"interface=\"(?P<ifname>[\w.-]+)\"\.\*\[\}\] \[1-9\]'"
)
# The autopeer units and the lab daemons that run their commands
# (lab/autopeerlab.py, when the plan enables [hosts.<h>.autopeer]).
AUTOPEER_UNITS = {
    "ibgp-tunnel-autopeer-web.service": "autopeer-web",
    "ibgp-tunnel-autopeer-apply.service": "autopeer-apply",
}
AUTOPEER_OUTSIDE_NODE = "outside"
AUTOPEER_NOT_IN_LAB = "the lab's dmz runs no autopeer units (start_all() not called?)"
AUTOPEER_REGISTRY_UNIT = "ibgp-tunnel-autopeer-registry.service"
# The web service's and registry's own users: the lab runs every unit as root.
AUTOPEER_USERS = (
    "the units' users (ibgp-autopeer, tmpfiles' modes under /var/lib/ibgp-tunnel/autopeer): "
    "the lab runs the autopeer units as root on a state directory of its own"
)
# vm-test.nix's outside has its uplink on eth1 (QEMU's VLAN); the lab's on eth0.
_OUTSIDE_UPLINK = "dev eth1"
_KEY_FILES = " /etc/bird/bird.conf $(readlink -f /etc/systemd/system/wireguard-wg-ibgp.service)"


def nix_eval(expr: str) -> Any:
    out = subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "--json", "-E", expr],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)


def vm_test_attr(attr: str) -> Any:
    """An attribute of the VM test that needs neither nixpkgs nor sops-nix."""
    return nix_eval(
        f"(import {VM_TEST} {{ sops-nix = null; ibgpTunnel = null; }} {{ lib = null; }}).{attr}"
    )


def test_script() -> str:
    """The testScript exactly as the NixOS test driver gets it."""
    return str(vm_test_attr("testScript"))


def script_values(script: str) -> dict[str, str]:
    """The assignments vm-test.nix puts in front of the script (announced_host, ...)."""
    values: dict[str, str] = {}
    for statement in ast.parse(script).body:
        if not isinstance(statement, ast.Assign) or not isinstance(statement.value, ast.Constant):
            break
        (target,) = statement.targets
        assert isinstance(target, ast.Name)
        values[target.id] = str(statement.value.value)
    return values


class LabBackend:
    """The NixOS test's machines as the lab's hosts (see the module's docstring)."""

    def __init__(self, lab_dir: Path, prefix: str, values: dict[str, str]) -> None:
        self.lab_dir = lab_dir
        self.prefix = prefix
        self.values = values
        self.plan = planfile.load(PLAN)
        self.topo = build_topology(self.plan, prefix)
        (self.peer,) = [p for p in self.topo.dn42_peers if p.name == "peer1"]
        self.nodes = {"dmz": "dmz", "pve": "pve", "lan": "lan-pve", "web": INET}
        self.nodes["peer1"] = self.peer.node
        # vm-test.nix's outside DN42 router (self-service peering): the lab's
        # outside router, once start_all() made it.
        self.nodes["outside"] = AUTOPEER_OUTSIDE_NODE
        self.started = False
        self.registry_repo: Path | None = None

    # --- the lab --------------------------------------------------------------------

    def environment(self) -> None:
        bird_dir = os.environ.get(location.BIRD_DIR_ENV) or str(BIRD3)
        os.environ.update(
            {
                location.LAB_DIR_ENV: str(self.lab_dir),
                location.PREFIX_ENV: self.prefix,
                location.BIRD_DIR_ENV: bird_dir,
                # The committed test secrets: the lab's keys are the VM test's.
                "SOPS_AGE_KEY_FILE": str(REPO / "secrets" / "test-age-key.txt"),
            }
        )
        # The autopeer units read their state's registry checkout, which the
        # registry unit (systemctl start) fills, as on the VM.
        os.environ.pop(location.DN42_REGISTRY_ENV, None)

    def start_all(self) -> None:
        """`start_all()`: the lab up, peer1 announcing what the VM's peer1 does, and
        the BIRD exporter the monitoring option runs on dmz and pve."""
        if self.started:
            return
        self.environment()
        down(self.lab_dir)
        plan = rtr_plan(Path(tempfile.mkdtemp(prefix="vm-plan-")))
        secrets = find_secrets_dir(PLAN, self.plan)
        progress = lambda line: print(f"    lab: {line}")  # noqa: E731
        st = up(plan, timeout=120, progress=progress, secrets_dir=secrets)
        self.started = True
        vm_peer = replace(
            self.peer,
            announce_ipv4=(self.values["peer_v4"], self.values["hijack_v4"]),
            announce_ipv6=(self.values["peer_v6"],),
        )
        reconfigure_bird(self.lab_dir, self.peer.node, dn42lab.peer_bird_config(vm_peer))
        self._start_bird_exporters(st)
        self._start_outside(st)

    def _start_outside(self, st: state.LabState) -> None:
        """vm-test.nix's outside: its WireGuard key, port and link-local address, the
        tunnel dialing dmz's port for its ASN (20000 + ASN mod 10000, keepalive 5 s),
        its maintainer's SSH key at the VM's path, its BIRD config."""
        asn = int(self.values["autopeer_asn"])
        router = autopeerlab.add_outside(
            st,
            "dmz",
            asn,
            announce_ipv6=(self.values["autopeer_v6"],),
            private_key=VM_OUTSIDE_WG_KEY.read_text().strip(),
            neighbor=self.values["autopeer_neighbor"],
            port=int(self.values["autopeer_listen_port"]),
        )
        if router.public_key != self.values["autopeer_public_key"]:
            raise RuntimeError(
                "secrets/test-autopeer-outside-wireguard-key.txt is not vm-test.nix's"
            )
        run_dir = Path(st.nodes[router.node]["run_dir"])
        install_secret(
            run_dir, self.values["autopeer_ssh_key"], VM_OUTSIDE_SSH_KEY.read_text().strip()
        )
        # dmz's DN42 key: the one the lab installed for its DN42 tunnels (the
        # lab makes its own; the VM's comes from sops), as the VM's outside names
        # dmz's in its peer.
        secret = Path(st.nodes["dmz"]["run_dir"]) / Path(
            autopeerlab.dn42_private_key_file()
        ).relative_to("/run")
        dmz_key = wgkeys.public_key_of(secret.read_text().strip())
        autopeerlab.start_outside(st, router, {"listen_port": 20000 + asn % 10000}, dmz_key)
        config = VM_OUTSIDE_BIRD.format(v6=self.values["autopeer_v6"], asn=asn)
        st.daemons.append(start_bird(self.lab_dir, router.node, router.netns, config))
        st.save()
        self.nodes["outside"] = router.node

    def _start_bird_exporters(self, st: state.LabState) -> None:
        exporter = shutil.which("prometheus-bird-exporter") or shutil.which("bird_exporter")
        if exporter is None:
            return  # wait_for_unit then says the unit has no lab equivalent
        for host in ("dmz", "pve"):
            record = st.nodes[host]
            # services.prometheus.exporters.bird as the monitoring option sets it.
            argv = [exporter, "-web.listen-address", f"0.0.0.0:{EXPORTER_PORT}"]
            argv += [
                "-bird.socket",
                "/run/bird/bird.ctl",
                "-bird.v2=true",
                "-format.new=true",
            ]
            daemon = daemons.start(
                f"{host}/prometheus-bird-exporter",
                netns.ns_argv(record["netns"], argv, Path(record["run_dir"])),
                node_dir(self.lab_dir, host) / "prometheus-bird-exporter.log",
            )
            st.daemons.append(daemon)  # `down` stops it with the rest
            st.save()

    def state(self) -> state.LabState:
        st = state.load(self.lab_dir)
        if st is None:
            raise driver.RequestedAssertionFailed("the lab is not up: call start_all() first")
        return st

    def record(self, machine: str) -> dict[str, Any]:
        nodes = self.state().nodes
        if self.nodes[machine] not in nodes:
            raise driver.NeedsVM(f"machine {machine}: the lab has no such node")
        return dict(nodes[self.nodes[machine]])

    # --- commands -------------------------------------------------------------------

    def argv(self, machine: str, script: str) -> list[str]:
        record = self.record(machine)
        path = f"{os.environ[location.BIRD_DIR_ENV]}:{os.environ.get('PATH', '')}"
        return netns.ns_argv(
            record["netns"],
            ["env", f"PATH={path}", "bash", "-c", script],
            Path(record["run_dir"]),
        )

    def _visible(self, machine: str, path: Path) -> str:
        """A copy of a lab file where `machine`'s commands see it (its /run is private)."""
        if not path.is_file():
            raise driver.RequestedAssertionFailed(f"lab file {path} is missing")
        run_dir = Path(self.record(machine)["run_dir"])
        copy = run_dir / "vm-check" / path.name
        copy.parent.mkdir(exist_ok=True)
        shutil.copyfile(path, copy)
        return f"/run/vm-check/{path.name}"

    def _address(self, machine: str) -> str:
        """The address `machine` is known by to the others (its uplink's IPv4)."""
        node = self.nodes[machine]
        for veth in self.topo.veths:
            if veth.a_node == node and veth.b_node == INET:
                return veth.a.addresses[0].cidr.split("/")[0]
        raise driver.RequestedAssertionFailed(f"no uplink address for {machine}")

    def translate(self, machine: str, command: str) -> tuple[str, str | None]:
        if "runuser -u ibgp-autopeer" in command:
            raise driver.NeedsVM(AUTOPEER_USERS)
        if machine == "outside" and _OUTSIDE_UPLINK in command:
            return (
                command.replace(_OUTSIDE_UPLINK, "dev eth0"),
                "outside's uplink: eth1 on the VM (QEMU's VLAN), eth0 in the lab",
            )
        wg = _WG_METRIC.fullmatch(command)
        if wg and shutil.which(WG_EXPORTER) is None:
            ifname = wg["ifname"]
            return (
                f"wg show {ifname} latest-handshakes | awk '$2 > 0 {{n++}} END {{exit n == 0}}'",
                (
                    f"needs a real VM: {WG_EXPORTER} is not packaged here; its "
                    f"wireguard_latest_handshake_seconds read as `wg show {ifname} "
                    "latest-handshakes` (the counter it exports)"
                ),
            )
        if command.endswith(_KEY_FILES) and machine in ("dmz", "pve"):
            conf = self._visible(machine, node_dir(self.lab_dir, self.nodes[machine]) / "bird.conf")
            rendered = self._visible(machine, self.lab_dir / "artifacts.json")
            return (
                command[: -len(_KEY_FILES)] + f" {conf} {rendered}",
                (
                    "needs a real VM: /etc/bird/bird.conf and the WireGuard unit in the "
                    "Nix store; mapped to the lab's bird.conf and the rendered WireGuard "
                    "settings (artifacts.json, what the unit is built from)"
                ),
            )
        for name in self.nodes:
            if f"//{name}:" in command:
                address = self._address(name)
                command = command.replace(f"//{name}:", f"//{address}:")
                return (
                    command,
                    f"host name {name} -> {address} (the VM's /etc/hosts entry)",
                )
        return command, None

    # --- units ------------------------------------------------------------------------

    def _daemon_alive(self, name: str) -> bool:
        return any(d.name == name and daemons.alive(d) for d in self.state().daemons)

    def unit_active(self, machine: str, unit: str) -> tuple[bool, str | None]:
        node = self.nodes[machine]
        if unit == "bird.service":
            alive = self._daemon_alive(f"{node}/bird")
            ok = alive and self.execute_ok(machine, "birdc show status | grep -q 'Daemon is up'")
            return ok, "the lab's BIRD (answering on /run/bird/bird.ctl)"
        found = re.fullmatch(r"wireguard-(?P<ifname>[\w.-]+)\.service", unit)
        if found:
            ifname = found["ifname"]
            ok = self._daemon_alive(f"{node}/wireguard-go {ifname}")
            ok = ok and self.execute_ok(machine, f"ip link show {ifname} up | grep -q UP")
            return ok, f"wireguard-go {ifname}, its interface up"
        if unit == "prometheus-bird-exporter.service":
            if not self._daemon_alive(f"{node}/prometheus-bird-exporter"):
                # scripts/setup installs it: its absence is a broken setup, not a VM's job.
                raise RuntimeError(f"{unit}: install prometheus-bird-exporter (scripts/setup)")
            return self.execute_ok(
                machine,
                f"curl -sf -o /dev/null http://127.0.0.1:{EXPORTER_PORT}/metrics",
            ), "the lab's prometheus-bird-exporter with the module's flags"
        if unit in AUTOPEER_UNITS:
            daemon = f"{node}/{AUTOPEER_UNITS[unit]}"
            if not any(d.name == daemon for d in self.state().daemons):
                raise driver.NeedsVM(f"unit {unit}: {AUTOPEER_NOT_IN_LAB}")
            return self._daemon_alive(daemon), f"the lab's {AUTOPEER_UNITS[unit]} daemon"
        if unit == "ibgp-tunnel-stayrtr.service":
            return self._daemon_alive(f"{node}/stayrtr"), "the lab's stayrtr (the module's flags)"
        if unit == f"{WG_EXPORTER}.service" and shutil.which(WG_EXPORTER) is None:
            interfaces = self.record(machine)["wireguard"]
            ok = all(self._daemon_alive(f"{node}/wireguard-go {i}") for i in interfaces)
            return ok, (
                f"needs a real VM: {WG_EXPORTER} is not packaged here; "
                "mapped to the wireguard-go daemons it would read"
            )
        raise driver.NeedsVM(f"unit {unit}: the lab has no equivalent")

    def execute_ok(self, machine: str, command: str) -> bool:
        argv = self.argv(machine, f"set -euo pipefail; {command}")
        return subprocess.run(argv, capture_output=True, check=False, timeout=30).returncode == 0

    def systemctl(self, machine: str, verb: str, unit: str) -> tuple[int, str, str]:
        node = self.nodes[machine]
        st = self.state()
        if unit == "bird.service" and node in ("dmz", "pve"):
            actions = {
                "restart": (
                    faults.restart_bird,
                    "`birdc graceful restart`, then `bird -R` (the module's ExecStop)",
                ),
                "stop": (faults.stop_bird, "`birdc down` (a stop for good)"),
                "start": (faults.start_bird, "`bird -R` on the same bird.conf"),
            }
            action, note = actions[verb]
            action(st, node)
            return 0, "", note
        if unit == "ibgp-tunnel-dn42-rtr.service" and verb == "start" and node == "dmz":
            dn42 = dn42lab.Dn42Lab(self.lab_dir, self.topo)
            dn42.served_json(node).write_text(VM_ROA_JSON.read_text())
            result = dn42.refresh_rtr(node)
            return (
                result.returncode,
                result.stdout,
                "the module's dn42-rtr-update.sh on checks/dn42-roa.json (the VM's URL)",
            )
        if unit == AUTOPEER_REGISTRY_UNIT and verb == "start" and node == "dmz":
            return self._refresh_registry(st, node)
        if unit in AUTOPEER_UNITS and verb == "restart" and node == "dmz":
            return self._restart_autopeer(st, node, AUTOPEER_UNITS[unit])
        raise driver.NeedsVM(f"systemctl {verb} {unit}: the lab has no equivalent")

    def _refresh_registry(self, st: state.LabState, node: str) -> tuple[int, str, str]:
        """The registry unit's command on checks/autopeer-registry made a git
        repository as vm-test.nix makes it, into dmz's autopeer state."""
        if self.registry_repo is None:
            self.registry_repo = _registry_repository(self.lab_dir / "vm-autopeer-registry")
        target = autopeerlab.state_dir(self.lab_dir, node).registry
        argv = [sys.executable, "-m", "ibgp_tunnel.cli", "dn42", "autopeer", "registry-refresh"]
        argv += ["--registry-url", f"file://{self.registry_repo}", "--registry", str(target)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        return (
            done.returncode,
            done.stdout + done.stderr,
            "the registry unit's `dn42 autopeer registry-refresh` on a file:// git "
            "repository of checks/autopeer-registry (as vm-test.nix builds it)",
        )

    def _restart_autopeer(self, st: state.LabState, node: str, name: str) -> tuple[int, str, str]:
        """Stop the lab's daemon for the unit and start it again as `lab up` does."""
        for daemon in [d for d in st.daemons if d.name == f"{node}/{name}"]:
            daemons.stop(daemon)
            st.daemons.remove(daemon)
        ns = str(st.nodes[node]["netns"])
        if name == "autopeer-apply":
            started = autopeerlab.start_apply(self.lab_dir, node, ns, "ibgp-tunnel")
        else:
            web = autopeerlab.start_web(self.lab_dir, node, ns, VM_AUTOPEER)
            assert web is not None
            started = web
        st.daemons.append(started)
        st.save()
        return 0, "", f"the lab's {name} daemon stopped and started again"


def _registry_repository(directory: Path) -> Path:
    """checks/autopeer-registry committed into a bare git repository."""
    work, bare = directory / "work", directory / "registry.git"
    shutil.rmtree(directory, ignore_errors=True)
    shutil.copytree(VM_REGISTRY, work)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    for argv in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "the VM test's registry"]):
        subprocess.run([*git, *argv], cwd=work, check=True, capture_output=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    return bare


def summary(run: driver.Run) -> list[str]:
    lines = []
    for outcome in run.outcomes:
        if outcome.title.startswith("(") and not outcome.notes:
            continue
        lines.append(f"  [{outcome.status}] {outcome.title}")
        for note in outcome.notes:
            lines.append(f"      {note}")
        if outcome.needs_vm:
            lines.append(f"      needs a real VM: {outcome.needs_vm}")
        if outcome.error:
            lines.append(f"      {outcome.error}")
    return lines


def run_on_lab(
    script: str, lab_dir: Path, prefix: str, keep_up: bool = False
) -> tuple[driver.Run, LabBackend, BaseException | None]:
    """Run `script` against a lab of its own; the lab goes down afterwards unless
    `keep_up` (then the caller takes it down)."""
    backend = LabBackend(lab_dir, prefix, script_values(script))
    run = driver.Run()
    error: BaseException | None = None
    try:
        driver.run_script(script, backend, list(backend.nodes), run)
    except Exception as exc:
        error = exc
    finally:
        if not keep_up:
            down(lab_dir)
    return run, backend, error


def main() -> int:
    if os.geteuid() != 0:
        print(
            "checks.vm: the lab needs root (network namespaces, nftables, TUN)",
            file=sys.stderr,
        )
        return 1
    lab_dir = Path(os.environ.get("IBGP_TUNNEL_VM_LAB_DIR") or "/run/ibgp-tunnel-vm-lab")
    prefix = location.validate_prefix(
        os.environ.get("IBGP_TUNNEL_VM_LAB_PREFIX") or "ibgvm-",
        "IBGP_TUNNEL_VM_LAB_PREFIX",
    )
    script = test_script()
    print(f"checks.vm: the testScript of {VM_TEST.name} against the lab in {lab_dir}")
    run, _, error = run_on_lab(script, lab_dir, prefix)
    print("checks.vm: per subtest")
    for line in summary(run):
        print(line)
    print(f"checks.vm: only a real VM (nix flake check) shows: {ONLY_A_VM}")
    if error is not None:
        print(f"checks.vm: FAILED: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    failed = [o for o in run.outcomes if o.error]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

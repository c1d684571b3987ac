"""The WireGuard interface of one autopeer at runtime, from the attrset the core
renders for it (the same one a static DN42 peer's networking.wireguard entry
gets): kernel WireGuard (`ip link add type wireguard`) or, where the kernel has
none (the lab), wireguard-go."""

from __future__ import annotations

import ipaddress
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ibgp_tunnel.autopeer.run import ApplyError, run
from ibgp_tunnel.paths import defaults

# Linux's IFNAMSIZ and the characters the core's interface grammar allows; checked
# again here because the name becomes an argument of ip/wg and a socket path.
_IFNAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$")
_KEY = re.compile(r"^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$")
# postSetup is the core's `ip -4 address add A/32 peer B/32 dev IF`, nothing else.
_POST_SETUP = re.compile(
    r"^ip -4 address add (\S+)/32 peer (\S+)/32 dev ([A-Za-z0-9_][A-Za-z0-9_.-]{0,14})$"
)
WIREGUARD_GO_SOCKETS = Path("/run/wireguard")
# base/defaults.toml: the group the host firewall's rules match (render/nftables.nix).
INTERFACE_GROUP = int(defaults()["autopeer"]["interface_group"])


def check_name(interface: str) -> str:
    if not _IFNAME.match(interface):
        raise ApplyError(f"the rendered interface name {interface!r} is not a Linux interface name")
    return interface


def public_key_of(private_key_file: str) -> str:
    """Our public key, for the requester (`wg pubkey` of the rendered key file)."""
    try:
        private = Path(private_key_file).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise ApplyError(f"cannot read our WireGuard key {private_key_file}: {error}") from None
    return run(["wg", "pubkey"], input=private + "\n").stdout.strip()


def exists(interface: str) -> bool:
    return run(["ip", "link", "show", "dev", check_name(interface)], check=False).returncode == 0


def wg_set_argv(interface: str, spec: Mapping[str, Any]) -> list[str]:
    """`wg set` for the rendered interface: our key and port, its one peer."""
    argv = ["wg", "set", interface, "private-key", str(spec["privateKeyFile"])]
    argv += ["listen-port", str(int(spec["listenPort"]))]
    for peer in spec["peers"]:
        key = str(peer["publicKey"])
        if not _KEY.match(key):
            raise ApplyError(f"{interface}: the rendered public key is not a WireGuard key")
        argv += ["peer", key]
        if peer.get("presharedKeyFile"):
            argv += ["preshared-key", str(peer["presharedKeyFile"])]
        if peer.get("endpoint"):
            argv += ["endpoint", str(peer["endpoint"])]
        if peer.get("persistentKeepalive"):
            argv += ["persistent-keepalive", str(int(peer["persistentKeepalive"]))]
        argv += ["allowed-ips", ",".join(str(ipaddress.ip_network(a)) for a in peer["allowedIPs"])]
    return argv


def _post_setup(interface: str, text: str) -> list[str] | None:
    if not text:
        return None
    match = _POST_SETUP.match(text)
    if match is None or match[3] != interface:
        raise ApplyError(f"{interface}: the rendered postSetup is not an IPv4 address pair")
    ipaddress.IPv4Address(match[1])
    ipaddress.IPv4Address(match[2])
    return text.split()


def _new_link(interface: str, userspace: bool) -> None:
    if not userspace:
        run(["ip", "link", "add", interface, "type", "wireguard"])
        return
    # wireguard-go forks itself into the background once the TUN device exists
    # and exits when it is deleted; its socket says it is ready for `wg`.
    env = {k: v for k, v in os.environ.items() if k != "WG_PROCESS_FOREGROUND"}
    run(["wireguard-go", interface], env=env)
    socket = WIREGUARD_GO_SOCKETS / f"{interface}.sock"
    deadline = time.monotonic() + 10
    while not socket.exists():
        if time.monotonic() > deadline:
            raise ApplyError(f"wireguard-go {interface}: {socket} did not appear within 10 s")
        time.sleep(0.05)


def create(interface: str, spec: Mapping[str, Any], *, userspace: bool = False) -> None:
    """The interface as networking.wireguard would set it up: link, addresses (IPv6
    without DAD), the rendered IPv4 pair, keys and peer, MTU, up. Half-made
    interfaces are deleted again."""
    check_name(interface)
    post = _post_setup(interface, str(spec.get("postSetup") or ""))
    _new_link(interface, userspace)
    try:
        for address in spec["ips"]:
            cidr = ipaddress.ip_interface(address)
            extra = ["nodad"] if cidr.version == 6 else []
            run(["ip", "address", "add", str(cidr), "dev", interface, *extra])
        if post is not None:
            run(post)
        run(wg_set_argv(interface, spec))
        mtu = int(spec["mtu"])
        if not 1280 <= mtu <= 9000:
            raise ApplyError(f"{interface}: the rendered MTU {mtu} is not from 1280 to 9000")
        # The host firewall (another table) knows autopeer interfaces by this group.
        run(["ip", "link", "set", interface, "group", str(INTERFACE_GROUP), "mtu", str(mtu), "up"])
    except (ApplyError, KeyError, ValueError) as error:
        delete(interface)
        if isinstance(error, ApplyError):
            raise
        raise ApplyError(f"{interface}: the rendered interface is incomplete: {error}") from None


def delete(interface: str) -> None:
    """Gone (wireguard-go exits with its TUN device); no error when it was not there."""
    if exists(interface):
        run(["ip", "link", "delete", "dev", interface])

"""`init`: a new project's commented plan and .sops.yaml, never over existing files."""

from __future__ import annotations

import contextlib
import ipaddress
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from ibgp_tunnel.errors import IbgpTunnelError, InputError
from ibgp_tunnel.newfile import write_new
from ibgp_tunnel.paths import defaults

PLAN_FILE = Path("hosts/plan.toml")
SOPS_FILE = Path(".sops.yaml")
# Not a valid recipient on purpose: sops refuses it until the user replaces it.
AGE_PLACEHOLDER = "REPLACE-WITH-YOUR-AGE-RECIPIENTS"
# age1 + 58 bech32 characters (a 32-byte X25519 key with its checksum).
_AGE_RECIPIENT = re.compile(r"age1[02-9ac-hj-np-z]{58}")

_PLAN = """\
# The network plan: the single source of truth for every host's BIRD,
# WireGuard and nftables configuration. Check it with
#   ibgp-tunnel check {plan_file}
# then create keys with `ibgp-tunnel keys` (private keys and PSKs go to
# secrets/<host>.yaml, encrypted with sops; public keys are written back here).

# Your ASN. DN42 ASNs are 4242420000-4242429999; use the one registered to you.
asn = 4242420000

# Named sets of BIRD prefix patterns ("a.b.c.d/n", "/n+", "/n-", "/n{{lo,hi}}").
# The DN42 set comes from the shared defaults; define [prefix_sets.dn42] to
# replace it. This one sends traffic for some addresses through the tunnel.
[prefix_sets.via_vps]
ipv4 = ["198.18.0.0/15"]
ipv6 = []

# The reflector: a VPS with a public address, peering with DN42.
[hosts.vps]
role = "reflector"
router_id = "172.20.0.1"            # an IPv4 of this host, unique in the plan
endpoint = "203.0.113.10"           # REPLACE: the public address clients dial
uplink_interfaces = ["eth0"]        # tunnel traffic leaving here is masqueraded
import_sets = ["dn42"]              # routes accepted from DN42 peers
kernel_export_sets = ["dn42"]       # routes installed in this host's kernel

# Static routes the VPS announces to its clients over iBGP.
[hosts.vps.announce]
ipv4 = ["198.18.0.0/15"]
ipv6 = []

# An eBGP session to a DN42 peer (its own tunnel is configured elsewhere).
# [hosts.vps.dn42_peers.peer1]
# asn = 4242421080
# neighbor = "172.20.42.1"
# interface = "dn42-peer1"

# The client: a home router behind NAT that dials the VPS.
[hosts.home]
role = "client"
router_id = "172.20.0.2"
lan_interfaces = ["br0"]            # LAN traffic into the tunnel is masqueraded
import_sets = ["dn42", "via_vps"]
kernel_export_sets = ["dn42", "via_vps"]

# One WireGuard tunnel per reflector-client pair. A reflector with several
# clients needs a distinct interface name (at most 15 characters) and UDP port
# per link.
[links.home]
reflector = "vps"
client = "home"
interface = "{interface}"
port = {port}
# The tunnel's subnets: IPv4 a /30 or /31; IPv6 a global or ULA /64 or /127
# (this one is a random ULA). Each end takes one address inside them.
ipv4 = "10.255.255.0/30"
reflector_ipv4 = "10.255.255.2"
client_ipv4 = "10.255.255.1"
ipv6 = "{ipv6_net}"
reflector_ipv6 = "{ipv6_reflector}"
client_ipv6 = "{ipv6_client}"
"""

_SOPS = """\
# sops encrypts secrets/<host>.yaml for these age recipients
# (`ibgp-tunnel keys` writes the files). List, comma-separated:
#  - yourself:    age-keygen -y ~/.config/sops/age/keys.txt
#  - every host:  ibgp-tunnel age-recipient --ssh-key ssh_host_ed25519_key.pub
#    (the host's SSH key, which sops-nix decrypts with)
creation_rules:
  - path_regex: secrets/.*\\.yaml$
    age: >-
      {recipients}
"""


@dataclass(frozen=True)
class Written:
    plan: Path
    sops_config: Path


def plan_text(ula_global_id: bytes | None = None) -> str:
    """The commented starter plan; the link's IPv6 is a fresh RFC 4193 ULA /64."""
    global_id = ula_global_id if ula_global_id is not None else secrets.token_bytes(5)
    net = ipaddress.IPv6Network((b"\xfd" + global_id + b"\xff\xff" + bytes(8), 64))
    base = net.network_address
    return _PLAN.format(
        plan_file=PLAN_FILE,
        interface=defaults()["interface"],
        port=defaults()["port"],
        ipv6_net=net,
        ipv6_reflector=base + 1,
        ipv6_client=base + 2,
    )


def sops_text(recipients: list[str]) -> str:
    """.sops.yaml with the given age recipients, or the placeholder."""
    for recipient in recipients:
        if not _AGE_RECIPIENT.fullmatch(recipient):
            raise InputError(
                f'"{recipient}" is not an age recipient (age1 followed by 58 characters); '
                "get one with `age-keygen -y KEYFILE` or `ibgp-tunnel age-recipient`"
            )
    return _SOPS.format(recipients=",".join(recipients) or AGE_PLACEHOLDER)


def init_project(directory: Path, recipients: list[str]) -> Written:
    """Write hosts/plan.toml and .sops.yaml under `directory`; both or neither.

    InputError if either file exists (naming it) or cannot be written.
    """
    plan, sops_config = directory / PLAN_FILE, directory / SOPS_FILE
    for path in (plan, sops_config):
        if path.exists() or path.is_symlink():
            raise InputError(f"{path} already exists; init never overwrites, move it away first")
    contents = {plan: plan_text(), sops_config: sops_text(recipients)}
    written: list[Path] = []
    try:
        for path, text in contents.items():
            write_new(path, text)
            written.append(path)
    except IbgpTunnelError:
        # Leave no half-initialised project: remove only what this call created.
        for path in written:
            with contextlib.suppress(OSError):
                path.unlink()
        raise
    return Written(plan, sops_config)

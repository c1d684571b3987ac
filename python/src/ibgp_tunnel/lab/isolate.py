"""Cut a lab host off the network entirely, as a VPS whose provider has an outage:
every packet in or out of its namespace dropped (loopback excepted), its daemons
left running. Used by the two-reflector tests and bench (issue #13)."""

from __future__ import annotations

from pathlib import Path

from ibgp_tunnel.lab import firewall
from ibgp_tunnel.lab.state import LabState
from ibgp_tunnel.lab.up import apply_nft, node_dir

ISOLATE_TABLE = "ibgpt-isolate"

# In the raw hooks, before conntrack: no tracked flow lets anything through.
_BODY = f"""table inet {ISOLATE_TABLE} {{
  chain prerouting {{
    type filter hook prerouting priority raw; policy drop;
    iifname "lo" accept
  }}
  chain output {{
    type filter hook output priority raw; policy drop;
    oifname "lo" accept
  }}
}}
"""


def _load(st: LabState, host: str, body: str) -> None:
    node = st.nodes[host]
    script = firewall.replace_table("inet", ISOLATE_TABLE, body)
    apply_nft(node["netns"], script, node_dir(Path(st.lab_dir), host) / "isolate.nft")


def cut_off(st: LabState, host: str) -> None:
    """Drop every packet `host` sends or receives (its tunnels, uplink and DN42 peering)."""
    _load(st, host, _BODY)


def reconnect(st: LabState, host: str) -> None:
    """Undo `cut_off` (a no-op when the host is connected)."""
    _load(st, host, "")

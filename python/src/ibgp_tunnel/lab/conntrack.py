"""Flush the conntrack table of the current network namespace (`conntrack -F`).

A firewall or NAT change applies to new flows only: the lab's pitfall checks
flush conntrack after changing a ruleset, as a reboot of the host would, so
an established flow does not hide the change. Plain netlink, so the lab needs
no conntrack-tools. Run inside a namespace with
`ip netns exec NS python3 -m ibgp_tunnel.lab.conntrack`.
"""

from __future__ import annotations

import socket
import struct
import sys

NETLINK_NETFILTER = 12
NFNL_SUBSYS_CTNETLINK = 1
IPCTNL_MSG_CT_DELETE = 2
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLMSG_ERROR = 0x2


def flush(family: int) -> None:
    """Delete every conntrack entry of `family` (AF_INET or AF_INET6)."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER) as sock:
        # nfgenmsg: family, version 0, resource id 0 (big endian); no attributes = flush.
        body = struct.pack("=BBH", family, 0, 0)
        msg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE
        header = struct.pack("=IHHII", 16 + len(body), msg_type, NLM_F_REQUEST | NLM_F_ACK, 1, 0)
        sock.sendto(header + body, (0, 0))
        reply = sock.recv(4096)
        _, kind, _, _, _ = struct.unpack("=IHHII", reply[:16])
        if kind == NLMSG_ERROR:
            (error,) = struct.unpack("=i", reply[16:20])
            # ENOENT: nothing to flush.
            if error not in (0, -2):
                raise OSError(-error, f"conntrack flush failed for family {family}")


def main() -> int:
    for family in (socket.AF_INET, socket.AF_INET6):
        flush(family)
    return 0


if __name__ == "__main__":
    sys.exit(main())

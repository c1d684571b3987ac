"""The lab's errors: each message says what went wrong and what to do."""

from ibgp_tunnel.errors import EXIT_BAD_INPUT, IbgpTunnelError


class LabError(IbgpTunnelError):
    """The lab could not do what was asked; the message is for people."""


class NotRootError(LabError):
    """The lab needs root (network namespaces, nftables, TUN devices)."""

    exit_code = EXIT_BAD_INPUT


class MissingToolError(LabError):
    """A binary the lab drives (bird, wireguard-go, wg, nft, ip) is not installed."""

    exit_code = EXIT_BAD_INPUT


class ForeignDirError(LabError):
    """A directory the lab did not make, or one others could swap: refused, never
    used or removed."""

    exit_code = EXIT_BAD_INPUT

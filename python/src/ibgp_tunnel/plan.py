"""The plan (hosts/plan.toml) as pydantic models: the shape, not the network rules.

Field names are the TOML keys (snake_case), exactly as docs/interfaces.md §1
lists them. The JSON Schema committed as plan.schema.json is generated from
these models (`ibgp-tunnel schema`). Addresses, prefixes and names stay strings
here so that one bad value does not hide every other problem: the Nix core's
`planProblems` (modules/lib/plan/problems.nix) checks them and reports each as a
finding, and so do the tuning numbers against BIRD's own ranges.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import ConfigDict, Field, create_model

from ibgp_tunnel import fieldtable

# extra="forbid", strict: fieldtable's base of every plan table.
_Table = fieldtable.PlanTable


class _Dn42PeerShape(_Table):
    """An eBGP session from a reflector to a DN42 neighbour."""

    # asn, neighbor, interface, export_sets, latency, ...: the table's
    # (modules/lib/grammar/fields.nix, scope dn42Peer), added below.
    # public_key, endpoint, link_local, ...: the peer's WireGuard tunnel, the
    # table's too (scope dn42Tunnel), added below.


# The annotations see the hand-written base; pydantic validates with the full model.
if TYPE_CHECKING:
    Dn42Peer = _Dn42PeerShape
else:
    Dn42Peer = create_model(
        "Dn42Peer",
        __base__=_Dn42PeerShape,
        __doc__=_Dn42PeerShape.__doc__,
        __module__=__name__,
        **fieldtable.pydantic_fields("dn42Peer"),
        **fieldtable.pydantic_fields("dn42Tunnel"),
    )


class _HostShape(_Table):
    """One machine: a reflector (the VPS) or a client (a home router)."""

    # role, router_id, public_key, endpoint, announce, dn42_roa, dn42_inbound, ...:
    # the table's (modules/lib/grammar/fields.nix, scope host), added below.

    dn42_peers: dict[str, Dn42Peer] = Field(
        default={}, description="Reflector only: eBGP sessions to DN42 neighbours, by name."
    )


if TYPE_CHECKING:
    Host = _HostShape
else:
    Host = create_model(
        "Host",
        __base__=_HostShape,
        __doc__=_HostShape.__doc__,
        __module__=__name__,
        **fieldtable.pydantic_fields("host"),
    )


class _LinkShape(_Table):
    """One WireGuard point-to-point tunnel between a reflector and a client, or between
    two reflectors (then `reflector` listens and `client` dials, and each is a plain
    iBGP peer of the other)."""

    # reflector, client, interface, port, ipv4, ...: the table's
    # (modules/lib/grammar/fields.nix, scope link), added below.


if TYPE_CHECKING:
    Link = _LinkShape
else:
    Link = create_model(
        "Link",
        __base__=_LinkShape,
        __doc__=_LinkShape.__doc__,
        __module__=__name__,
        **fieldtable.pydantic_fields("link"),
    )


class _TuningShape(_Table):
    """Failover and restart behaviour of the BGP sessions; every key is optional and
    overrides the default in modules/lib/base/defaults.toml [tuning]. The ranges are
    BIRD's, checked by the Nix core (modules/lib/grammar/tokens.nix: tuning)."""

    # bfd, bfd_interval_ms, ...: the table's (modules/lib/grammar/fields.nix,
    # scope tuning), added below.


if TYPE_CHECKING:
    Tuning = _TuningShape
else:
    Tuning = create_model(
        "Tuning",
        __base__=_TuningShape,
        __doc__=_TuningShape.__doc__,
        __module__=__name__,
        **fieldtable.pydantic_fields("tuning"),
    )


class _PlanShape(_Table):
    """A whole network: one ASN, named prefix sets, hosts and the links between them."""

    model_config = ConfigDict(title="ibgp-tunnel plan")

    # asn, prefix_sets, anycast: the table's (modules/lib/grammar/fields.nix,
    # scope plan), added below.
    hosts: dict[str, Host] = Field(description="The machines, by name.")
    links: dict[str, Link] = Field(
        default={}, description="The tunnels, one per reflector-client pair, by name."
    )
    tuning: Tuning = Field(
        default_factory=Tuning,
        description="BFD, graceful restart, timers and import limits for every host.",
    )


if TYPE_CHECKING:
    Plan = _PlanShape
else:
    Plan = create_model(
        "Plan",
        __base__=_PlanShape,
        __doc__=_PlanShape.__doc__,
        __module__=__name__,
        **fieldtable.pydantic_fields("plan"),
    )

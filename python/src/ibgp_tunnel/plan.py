"""The plan (hosts/plan.toml) as pydantic models: the shape, not the network rules.

Field names are the TOML keys (snake_case), exactly as docs/interfaces.md §1
lists them. The JSON Schema committed as plan.schema.json is generated from
these models (`ibgp-tunnel schema`). Addresses, prefixes and names stay strings
here so that one bad value does not hide every other problem: the Nix core's
`planProblems` (modules/lib/plan/problems.nix) checks them and reports each as a
finding, and so do the tuning numbers against BIRD's own ranges.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, create_model

from ibgp_tunnel import fieldtable

ASN_MAX = 2**32 - 1
PORT_MAX = 2**16 - 1

# TOML has no null: an absent optional key is simply missing, so the schema says
# "string" rather than pydantic's "string or null", and shows no null default.
OptionalStr = Annotated[str | None, WithJsonSchema({"type": "string"})]
OptionalStrList = Annotated[
    list[str] | None, WithJsonSchema({"type": "array", "items": {"type": "string"}})
]


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


class _Table(BaseModel):
    # strict: "51821" is not a port; forbid: a misspelt key is an error, not ignored.
    model_config = ConfigDict(extra="forbid", strict=True)


class PrefixSet(_Table):
    """A named set of BIRD prefix patterns, defined once in bird.conf."""

    ipv4: list[str] = Field(
        default=[],
        description='BIRD prefix patterns, e.g. "172.20.0.0/14{21,29}", "172.31.0.0/16+".',
    )
    ipv6: list[str] = Field(default=[], description='BIRD prefix patterns, e.g. "fd00::/8{44,64}".')


class Announce(_Table):
    """Static prefixes a host originates into iBGP."""

    ipv4: list[str] = Field(default=[], description='IPv4 prefixes, e.g. "104.16.0.0/13".')
    ipv6: list[str] = Field(default=[], description='IPv6 prefixes, e.g. "2606:4700::/32".')


class Inbound(_Table):
    """A destination hosts outside the plan (DN42) may open connections to."""

    prefix: str = Field(
        description='Destination prefix, IPv4 or IPv6, e.g. "172.22.0.53/32" (one host).'
    )
    proto: Literal["tcp", "udp"] = Field(description="Transport protocol: tcp or udp.")
    port: int = Field(ge=1, le=PORT_MAX, description="Destination port.")


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


class Dn42Roa(_Table):
    """ROA validation of DN42 routes: files a timer refreshes, BIRD reloads on change."""

    enable: bool = Field(default=True, description="Import only ROA-valid routes from DN42.")
    ipv4_url: OptionalStr = Field(
        default=None,
        json_schema_extra=_no_default,
        description="IPv4 ROA file for BIRD 2+ (default: the one DN42's wiki documents).",
    )
    ipv6_url: OptionalStr = Field(
        default=None, json_schema_extra=_no_default, description="IPv6 ROA file for BIRD 2+."
    )
    allow_insecure_urls: bool = Field(
        default=False,
        description="Let ipv4_url/ipv6_url be plain http:// (anyone on the path could rewrite "
        "them); https:// and file:// need no opt-in.",
    )
    interval: OptionalStr = Field(
        default=None,
        json_schema_extra=_no_default,
        description='Refresh interval, a systemd time span such as "15min".',
    )


class _HostShape(_Table):
    """One machine: a reflector (the VPS) or a client (a home router)."""

    # role, router_id, import_sets, ...: the table's (modules/lib/grammar/fields.nix,
    # scope host), added below.

    public_key: OptionalStr = Field(
        default=None,
        json_schema_extra=_no_default,
        description="WireGuard public key (base64); written by `ibgp-tunnel keys`.",
    )
    announce: Announce = Field(
        default=Announce(), description="Static prefixes this host sends over iBGP."
    )
    endpoint: OptionalStr = Field(
        default=None,
        json_schema_extra=_no_default,
        description="Reflector only: the address clients dial (IPv4, IPv6 or DNS name, no port).",
    )
    dn42_peers: dict[str, Dn42Peer] = Field(
        default={}, description="Reflector only: eBGP sessions to DN42 neighbours, by name."
    )
    dn42_roa: Dn42Roa = Field(
        default=Dn42Roa(), description="Reflector with DN42 peers: ROA validation."
    )
    dn42_inbound: list[Inbound] = Field(
        default=[],
        description="Client: what DN42 may open connections to in this client's network, "
        'e.g. [{ prefix = "172.22.0.53/32", proto = "tcp", port = 443 }]. Everything '
        "else from DN42 gets only replies to connections made from inside.",
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


class Plan(_Table):
    """A whole network: one ASN, named prefix sets, hosts and the links between them."""

    model_config = ConfigDict(title="ibgp-tunnel plan")

    asn: int = Field(
        ge=1,
        le=ASN_MAX,
        description="The network's own ASN (32-bit); DN42 uses 4242420000-4242429999.",
    )
    prefix_sets: dict[str, PrefixSet] = Field(
        default={},
        description="Named prefix sets; a set named like one in defaults.toml (dn42) replaces it.",
    )
    hosts: dict[str, Host] = Field(description="The machines, by name.")
    links: dict[str, Link] = Field(
        default={}, description="The tunnels, one per reflector-client pair, by name."
    )
    tuning: Tuning = Field(
        default_factory=Tuning,
        description="BFD, graceful restart, timers and import limits for every host.",
    )
    # Network-wide, not per host: anycast is a property of a prefix at every
    # site that announces it (and names only it, not the site's other
    # prefixes), and one host's options cannot see the others' announcements.
    anycast: Announce = Field(
        default_factory=Announce,
        description="Prefixes more than one client announces on purpose, each site serving them "
        "itself (anycast). Any other prefix two clients announce, or one inside another "
        "client's, is refused: DN42's replies would reach only one of them.",
    )

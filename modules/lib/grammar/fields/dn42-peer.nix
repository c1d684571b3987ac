# The DN42 peer fields of the table (../fields.nix):
# [hosts.<h>.dn42_peers.<p>] / services.ibgpTunnel.dn42Peers.<p>.<option>.
[
  # --- [hosts.<h>.dn42_peers.<p>] / services.ibgpTunnel.dn42Peers.<p> ------
  {
    key = "asn";
    option = "asn";
    type = "int";
    token = "asn";
    roles = [ "reflector" ];
    example = 4242421080;
    description = "The DN42 peer's AS number (32-bit).";
  }
  {
    key = "neighbor";
    option = "neighbor";
    type = "str";
    token = "address";
    roles = [ "reflector" ];
    example = "172.20.42.1";
    description = "The peer's address for the eBGP session (IPv4, or IPv6 with `interface` or a tunnel for link-local).";
  }
  {
    key = "interface";
    option = "interface";
    type = "str";
    token = "interface";
    nullable = true;
    roles = [ "reflector" ];
    example = "dn42-peer1";
    description = "Interface the peer is reached on: configured outside this module, or the one its tunnel runs on (default dn42-<peer>). Tunnel traffic leaving through it is masqueraded.";
  }
  {
    key = "export_sets";
    option = "exportSets";
    type = "strList";
    token = "name";
    default = [ ];
    roles = [ "reflector" ];
    description = "Names of prefix sets whose static announcements are sent to this peer. Empty: export nothing, so client routes never leak to DN42.";
  }
  {
    key = "latency";
    option = "latency";
    type = "int";
    token = "dn42.latency";
    also = [ "auto" ];
    nullable = true;
    check = true;
    roles = [ "reflector" ];
    example = 3;
    description = "DN42 latency community of this link, (64511, 1-9), or \"auto\": measured (the median round-trip time of a few pings over the peer's tunnel, on a timer) and mapped to DN42's log-scale class (1: under 2.7 ms, x: under e^x ms); BIRD is reconfigured only when the class changes. Unset: not tagged.";
  }
  {
    key = "bandwidth";
    option = "bandwidth";
    type = "int";
    token = "dn42.bandwidth";
    nullable = true;
    check = true;
    roles = [ "reflector" ];
    example = 24;
    description = "DN42 bandwidth community of this link, (64511, 21-29). Unset: not tagged.";
  }
  {
    key = "crypto";
    option = "crypto";
    type = "int";
    token = "dn42.crypto";
    nullable = true;
    check = true;
    roles = [ "reflector" ];
    defaultText = "34 (WireGuard: safe, with PFS) when `tunnel` is set, else not tagged";
    description = "DN42 crypto community of this link, (64511, 31-34); unset: 34 (WireGuard) with a tunnel the module runs, else not tagged.";
  }
  {
    key = "import_limit";
    option = "importLimit";
    type = "int";
    low = 1;
    high = 1000000;
    expect = "an import limit per address family (a number of routes)";
    nullable = true;
    default = 9000;
    check = true;
    roles = [ "reflector" ];
    example = 20000;
    description = "Most routes accepted from this peer per address family (`import limit` in each channel; past it BIRD does tuning.importLimitAction, `block` by default: it keeps what it has and accepts nothing new). DN42's whole table is a few thousand routes per family, so a peer leaking far more is cut off. null (options only): the sessions' tuning.importLimit applies.";
  }
  {
    key = "receive_limit";
    option = "receiveLimit";
    type = "int";
    low = 1;
    high = 1000000;
    expect = "a receive limit per address family (a number of routes)";
    nullable = true;
    check = true;
    roles = [ "reflector" ];
    example = 20000;
    description = "Most routes kept from this peer per address family before the import filter (`receive limit` in each channel; past it BIRD does tuning.importLimitAction, `block` by default). BIRD counts what it keeps: every route the peer sent where it keeps them unfiltered (with RTR, `import table`), else the routes the filter accepted, so set it at or above import_limit. Unset: none.";
  }
]

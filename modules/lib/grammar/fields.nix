# The plan fields declared once. Each entry says where the field lives in the
# plan (scope + TOML key) and in the options (option name in the same place),
# its type and grammar (a token of tokens.nix / dn42-tokens.nix, or an inline
# range), default, description and which hosts set it. Generated from it:
# the NixOS options (modules/ibgp-tunnel/options.nix), the plan -> host spec
# mapping (plan/host.nix, plan/dn42-peer.nix), the module's plan
# field list (modules/ibgp-tunnel/plan.nix), the defaults a hand-made spec
# may leave out (render/dn42.nix), and through `json` the pydantic fields of
# the Python helper and with them plan.schema.json (python/src/ibgp_tunnel/
# fields.json is that JSON, committed; a test keeps it in sync).
#
# scope: "host" = [hosts.<h>] / services.ibgpTunnel.<option>;
#        "dn42Peer" = [hosts.<h>.dn42_peers.<p>] / services.ibgpTunnel.dn42Peers.<p>.<option>.
# type: bool | int | str | strList | enum. int/str/strList take their grammar
#   from `token` (a dotted path into tokens.nix); an int may give low, high
#   and expect inline instead; enum lists `values`.
# No `default` and not `nullable`: required. nullable: the option may be
#   null (and is by default, unless `default` says otherwise); the plan
#   leaves the key out (TOML has no null).
# check: the plan rules check the value against its grammar here
#   (planProblems), not by hand elsewhere.
let
  inherit (builtins)
    concatMap
    filter
    foldl'
    isString
    listToAttrs
    split
    ;
  tokens = import ./tokens.nix;
  both = [ "reflector" "client" ];

  table = [
    # --- [hosts.<h>] / services.ibgpTunnel -----------------------------------
    {
      scope = "host";
      key = "role";
      option = "role";
      type = "enum";
      values = [ "reflector" "client" ];
      roles = both;
      example = "client";
      description = "`reflector`: the VPS that peers with DN42 and reflects routes to its clients. `client`: a home router that learns routes over iBGP.";
    }
    {
      scope = "host";
      key = "router_id";
      option = "routerId";
      type = "str";
      token = "routerId";
      roles = both;
      example = "172.23.101.2";
      description = "BIRD router id (an IPv4 address, unique per host).";
    }
    {
      scope = "host";
      key = "cluster_id";
      option = "clusterId";
      type = "str";
      token = "clusterId";
      nullable = true;
      roles = [ "reflector" ];
      example = "172.23.101.1";
      description = "Reflector: the RFC 4456 cluster id (`rr cluster id`), a dotted quad; unset keeps BIRD's default, the router id. With two or more reflectors each needs its own (see the README's two-reflector section).";
    }
    {
      scope = "host";
      key = "import_sets";
      option = "importSets";
      type = "strList";
      token = "name";
      default = [ ];
      roles = both;
      example = [ "dn42" "cf" ];
      description = "Prefix sets BIRD accepts: from the reflector (clients), or from DN42 peers (reflectors). Default routes are never accepted.";
    }
    {
      scope = "host";
      key = "kernel_export_sets";
      option = "kernelExportSets";
      type = "strList";
      token = "name";
      default = [ ];
      roles = both;
      example = [ "dn42" "cf" ];
      description = "Prefix sets BIRD installs into this host's kernel routing table.";
    }
    {
      scope = "host";
      key = "lan_interfaces";
      option = "lanInterfaces";
      type = "strList";
      token = "interface";
      default = [ ];
      roles = [ "client" ];
      example = [ "vmbr0" ];
      description = "Client: LAN interfaces whose traffic is masqueraded into the tunnel (pitfall 3 of the write-up).";
    }
    {
      scope = "host";
      key = "uplink_interfaces";
      option = "uplinkInterfaces";
      type = "strList";
      token = "interface";
      default = [ ];
      roles = [ "reflector" ];
      example = [ "eth0" ];
      description = "Reflector: interfaces tunnel traffic is masqueraded out of, like networking.nat.externalInterface (pitfall 3 of the write-up).";
    }
    {
      scope = "host";
      key = "accept_ra_interfaces";
      option = "acceptRAInterfaces";
      type = "strList";
      token = "interface";
      nullable = true;
      roles = both;
      example = [ "wan0" ];
      description = ''
        Interfaces that learn an IPv6 address or default route from router
        advertisements handled by the kernel (SLAAC). The module turns on IPv6
        forwarding, and the kernel then ignores RAs on every interface whose
        `accept_ra` is 1 (its default), so the address and route expire; the
        module sets `net.ipv6.conf.<interface>.accept_ra = 2` on each listed
        one (a VLAN's `.` written `/`, as NixOS does). Unset (null): the
        uplink interfaces on a reflector; on a client, none, with a warning
        until you decide (`[ ]` when nothing needs it).

        Only the kernel's own RA handling reads this sysctl. NixOS's dhcpcd
        (networking.useDHCP) sets `accept_ra = 0` on the interfaces it runs on
        and handles RAs itself, forwarding or not, except where it leaves them
        to the kernel: an interface with a static IPv6 address (`noipv6rs`),
        with static IPv4 addresses (dhcpcd skips it), or
        `networking.dhcpcd.IPv6rs = false`. systemd-networkd
        (networking.useNetworkd) also handles RAs itself and ignores this
        sysctl: there set `IPv6AcceptRA = true` in the interface's
        `systemd.network.networks.<name>.networkConfig` (networkd turns RAs
        off by default only when its own `IPv6Forwarding=`/`IPForward=` is on).
      '';
    }
    {
      scope = "host";
      key = "allow_cover_everything";
      option = "allowCoverEverything";
      type = "bool";
      default = false;
      roles = both;
      description = "Let importSets, kernelExportSets or announce (import_sets, kernel_export_sets, announce in the plan) cover every address (`0.0.0.0/0+`, or the two /1 halves together). Refused otherwise: such sets route all traffic, usually the tunnel's own included. A client's sets covering the endpoint it dials stay an error either way.";
    }

    # --- [hosts.<h>.dn42_peers.<p>] / services.ibgpTunnel.dn42Peers.<p> ------
    {
      scope = "dn42Peer";
      key = "asn";
      option = "asn";
      type = "int";
      token = "asn";
      roles = [ "reflector" ];
      example = 4242421080;
      description = "The DN42 peer's AS number (32-bit).";
    }
    {
      scope = "dn42Peer";
      key = "neighbor";
      option = "neighbor";
      type = "str";
      token = "address";
      roles = [ "reflector" ];
      example = "172.20.42.1";
      description = "The peer's address for the eBGP session (IPv4, or IPv6 with `interface` or a tunnel for link-local).";
    }
    {
      scope = "dn42Peer";
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
      scope = "dn42Peer";
      key = "export_sets";
      option = "exportSets";
      type = "strList";
      token = "name";
      default = [ ];
      roles = [ "reflector" ];
      description = "Names of prefix sets whose static announcements are sent to this peer. Empty: export nothing, so client routes never leak to DN42.";
    }
    {
      scope = "dn42Peer";
      key = "latency";
      option = "latency";
      type = "int";
      token = "dn42.latency";
      nullable = true;
      check = true;
      roles = [ "reflector" ];
      example = 3;
      description = "DN42 latency community of this link, (64511, 1-9). Unset: not tagged.";
    }
    {
      scope = "dn42Peer";
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
      scope = "dn42Peer";
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
      scope = "dn42Peer";
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
  ];

  tokenOf = path: foldl' (set: name: set.${name}) tokens (filter isString (split "[.]" path));

  required = f: !(f ? default) && !(f.nullable or false);
  defaultOf = f: f.default or null;

  # The grammar a field's values are checked (and emitted) with; null for bool.
  kindOf =
    f:
    if f ? token then
      tokenOf f.token
    else if f.type == "int" then
      tokens.intKind { inherit (f) low high expect; }
    else if f.type == "enum" then
      tokens.enumKind f.values
    else
      null;

  of = scope: filter (f: f.scope == scope) table;
  find = scope: option: builtins.head (filter (f: f.option == option) (of scope) ++ [ (throw "ibgp-tunnel: fields.nix has no ${scope} field ${option}") ]);
in
{
  inherit table required defaultOf kindOf of;

  # The option names of a scope (plan.nix's static field list).
  optionNames = scope: map (f: f.option) (of scope);

  # The grammar of one field, for an emitter: (kind "dn42Peer" "importLimit").emit path value.
  kind = scope: option: kindOf (find scope option);

  # A plan table of `scope` -> its option values, defaults filled in.
  fromPlan =
    scope: attrs:
    listToAttrs (
      map (f: {
        name = f.option;
        value = if required f then attrs.${f.key} else attrs.${f.key} or (defaultOf f);
      }) (of scope)
    );

  # What a spec made by hand may leave out: every field that is not required.
  specDefaults =
    scope:
    listToAttrs (
      map (f: {
        name = f.option;
        value = defaultOf f;
      }) (filter (f: !required f) (of scope))
    );

  # The plan rules of the fields marked `check`: each present value against
  # its grammar. tokenError: plan/rules/common.nix's (kind -> path -> value -> findings).
  planChecks =
    scope: tokenError: at: attrs:
    concatMap (f: if (f.check or false) && attrs ? ${f.key} then tokenError (kindOf f) (at f.key) attrs.${f.key} else [ ]) (of scope);

  # The table as JSON data, grammars resolved (python/src/ibgp_tunnel/fields.json).
  json = map (
    f:
    let
      k = kindOf f;
    in
    removeAttrs f [ "defaultText" ]
    // {
      required = required f;
      nullable = f.nullable or false;
    }
    // (if k != null && k ? low then { inherit (k) low high; } else { })
    // (if k != null && k ? values then { inherit (k) values; } else { })
    // (if k != null && k ? regex then { inherit (k) regex expect; } else { })
  ) table;
}

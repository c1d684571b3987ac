# host spec -> our nftables table (masquerade) and the rules that belong in
# the host firewall's forward-allow and rpfilter-allow chains.
let
  inherit (builtins) attrValues concatStringsSep filter;
  util = import ../base/util.nix;
  defaults = import ../base/defaults.nix;
  inherit (import ./blocks.nix) block render;

  set = names: "{ ${concatStringsSep ", " (map util.quote names)} }";

  tunnelInterfaces = spec: map (link: link.interface) (attrValues spec.links);

  # Self-service peers (render/autopeer.nix) come and go at runtime: their
  # interfaces and ports are elements of named sets the apply unit fills,
  # matched beside the static DN42 interfaces wherever those are.
  autopeerOn = spec: (import ../spec/dn42.nix).autopeerOf spec != null;
  apIfaces = "@${defaults.autopeer.nft_interfaces_set}";
  autopeerSets = spec: util.optional (autopeerOn spec) [
    (block "set ${defaults.autopeer.nft_interfaces_set}" [ "type ifname;" ])
    (block "set ${defaults.autopeer.nft_ports_set}" [ "type inet_service;" ])
  ];
  # The host firewall's view of them: the interface group (base/defaults.toml).
  apGroup = toString defaults.autopeer.interface_group;
  # A rule for the autopeer interfaces beside one for the static ones.
  withAutopeers = spec: rule: util.optional (autopeerOn spec) (rule apIfaces);

  # Clients hide their LANs behind their tunnel address, except the prefixes
  # they announce over iBGP: those are routable from the far side as they are
  # (LAN-to-LAN through the reflector). Reflectors hide the tunnels behind
  # their uplink and DN42 addresses, which the far side can route back to.
  clientMasquerade =
    spec: family:
    let
      nfproto = "meta nfproto ${family}";
      announced = spec.announce.${family};
      match = if family == "ipv4" then "ip saddr" else "ip6 saddr";
      keep = util.optionalString (announced != [ ]) " ${match} != { ${concatStringsSep ", " announced} }";
    in
    "iifname ${set spec.lanInterfaces} oifname ${set (tunnelInterfaces spec)} ${nfproto}${keep} masquerade";

  masqueradeRules =
    spec:
    let
      # Every DN42 peer's interface, the tunnels' default dn42-<peer> names included.
      dn42Interfaces = (import ./dn42.nix).interfaces spec;
      outbound = spec.uplinkInterfaces ++ dn42Interfaces;
    in
    if spec.role == "client" then
      (if spec.lanInterfaces == [ ] then [ ] else map (clientMasquerade spec) [ "ipv4" "ipv6" ])
    else
      # A reflector nobody links to yet (a plan warning) has no tunnel: no rule.
      util.optional (outbound != [ ] && spec.links != { }) "iifname ${set (tunnelInterfaces spec)} oifname ${set outbound} masquerade"
      ++ (if spec.links != { } then withAutopeers spec (aps: "iifname ${set (tunnelInterfaces spec)} oifname ${aps} masquerade") else [ ]);

  # --- inbound from outside the plan (DN42) ------------------------------
  # Our own filter chains, not the host firewall's forward-allow: a drop in
  # any base chain is final, so they hold whatever the host firewall accepts
  # (filterForward off, a trusted tunnel, a port opened on it). Replies pass
  # (ct state established,related); new connections pass only to what
  # dn42Inbound opens, or, on a client, from the plan's own networks.

  inbound = spec: if spec.dn42Inbound or null == null then [ ] else spec.dn42Inbound;

  # "ip daddr 172.22.0.53/32 tcp dport 443": one opened destination. The
  # core's grammars checked every part (spec.nix: prefixAny, inboundProto, port).
  opened =
    entry:
    let
      match = if builtins.match ".*:.*" entry.prefix != null then "ip6 daddr" else "ip daddr";
    in
    "${match} ${entry.prefix} ${entry.proto} dport ${toString entry.port}";

  openedRules = head: spec: map (entry: "${head} ${opened entry} accept") (inbound spec);

  internal =
    spec: family:
    let
      prefixes = if spec.internalPrefixes or null == null then [ ] else spec.internalPrefixes.${family};
    in
    prefixes;

  ports = list: "{ ${concatStringsSep ", " (map toString list)} }";

  # The exporters are never reachable through a tunnel, DN42's included; on a
  # client nothing else from the tunnels is either, except the reflector's own
  # BGP, BFD and ping (doctor's advice) from its tunnel address.
  inputRules =
    spec:
    let
      links = tunnelInterfaces spec;
      every = links ++ dn42Interfaces spec;
      peer =
        link:
        let
          from = "iifname ${util.quote link.interface} ip saddr ${link.neighborAddress}";
        in
        [
          "${from} tcp dport 179 accept"
          "${from} icmp type echo-request accept"
        ]
        ++ util.optional spec.tuning.bfd "${from} udp dport 4784 accept";
      client = spec.role == "client" && links != [ ];
    in
    util.optional (every != [ ]) "iifname ${set every} tcp dport ${ports defaults.exporter_ports} drop"
    ++ withAutopeers spec (aps: "iifname ${aps} tcp dport ${ports defaults.exporter_ports} drop")
    ++ (
      if client then
        [ "iifname ${set links} ct state established,related accept" ]
        ++ builtins.concatMap peer (attrValues spec.links)
        ++ openedRules "iifname ${set links}" spec
        ++ [ "iifname ${set links} drop" ]
      else
        [ ]
    );

  # A reflector is where DN42 enters the network: from a DN42 interface into
  # a tunnel (its clients, another reflector), by interface, so no source
  # address (DN42 interfaces are exempt from the reverse-path check) gets
  # around it. A client checks again what comes out of its tunnels, by
  # source: the plan's link nets and client announcements are its own.
  forwardRules' =
    spec:
    let
      links = tunnelInterfaces spec;
      dn42 = dn42Interfaces spec;
      fromDn42 = "iifname ${set dn42} oifname ${set links}";
      fromTunnel = "iifname ${set links}";
      own =
        family: match:
        util.optional (internal spec family != [ ]) "${fromTunnel} ${match} { ${concatStringsSep ", " (internal spec family)} } accept";
    in
    if links == [ ] then
      [ ]
    else if spec.role == "reflector" then
      (
        let
          from = head: [ "${head} ct state established,related accept" ] ++ openedRules head spec ++ [ "${head} drop" ];
        in
        (if dn42 != [ ] then from fromDn42 else [ ]) ++ (if autopeerOn spec then from "iifname ${apIfaces} oifname ${set links}" else [ ])
      )
    else
      [ "${fromTunnel} ct state established,related accept" ]
      ++ own "ipv4" "ip saddr"
      ++ own "ipv6" "ip6 saddr"
      ++ openedRules fromTunnel spec
      ++ [ "${fromTunnel} drop" ];

  # --- the plan's own networks never leave by the uplink ------------------
  # A reflector that loses its last route to a client's LAN (both twins
  # withdrawing it at once, docs/performance.md "The soak's BIRD 2
  # violations, traced") would forward that LAN's packets by its default
  # route, out of the uplink and masqueraded: outside the tunnels'
  # encryption. Whatever is addressed to the plan's own networks (its link
  # subnets and the clients' announcements, internalPrefixes) or to what the
  # reflector takes from and gives to DN42 (importSets, the DN42 peers'
  # exportSets, DN42 space only by the plan's rules) belongs in a tunnel, so
  # out of an uplink it is refused with the error the kernel itself gives
  # for a missing route. Established flows too: a flow tracked before the
  # route went is what leaves un-NATed. Not the reflector's own `announce`
  # (its "route via the VPS" statics, a twin's included in importPrefixes):
  # those leave by the uplink by design. Only the uplinks are named, so a
  # DN42 interface the spec does not list (autopeering) is never caught.

  # "172.20.0.0/14{21,29}" -> "172.20.0.0/14": every address a pattern's
  # prefixes can hold. The pattern passed the core's grammar (spec/shape.nix).
  patternNetwork = pattern: builtins.head (builtins.match "([^+{-]+).*" pattern);

  privatePrefixes =
    spec: family:
    let
      sets = names: builtins.concatMap (name: spec.prefixSets.${name}.${family} or [ ]) names;
      exported = builtins.concatMap (peer: peer.exportSets) (attrValues spec.dn42Peers);
    in
    util.uniqueStrings (internal spec family ++ map patternNetwork (sets (spec.importSets ++ exported)));

  uplinkGuardRules =
    spec:
    let
      guard =
        family: match: error:
        let
          prefixes = privatePrefixes spec family;
        in
        util.optional (prefixes != [ ]) "oifname ${set spec.uplinkInterfaces} ${match} { ${concatStringsSep ", " prefixes} } reject with ${error}";
    in
    if spec.role != "reflector" || spec.uplinkInterfaces == [ ] || spec.links == { } then
      [ ]
    else
      guard "ipv4" "ip daddr" "icmp net-unreachable" ++ guard "ipv6" "ip6 daddr" "icmpv6 no-route";

  filterChain =
    name: rules:
    util.optional (rules != [ ]) (block "chain ${name}" ([ "type filter hook ${name} priority filter; policy accept;" ] ++ rules));

  content =
    spec:
    render (
      [
        (autopeerSets spec)
        (block "chain postrouting" (
          [
            "type nat hook postrouting priority srcnat; policy accept;"
          ]
          ++ masqueradeRules spec
        ))
      ]
      ++ filterChain "input" (inputRules spec)
      ++ filterChain "forward" (uplinkGuardRules spec ++ forwardRules' spec)
    );

  perInterface = template: spec: concatStringsSep "" (map template (tunnelInterfaces spec));

  # Every DN42 peer's interface (reflectors only; [ ] on clients).
  dn42Interfaces = spec: (import ./dn42.nix).interfaces spec;

  # DN42 in the forward chain: what the tunnels send to DN42, said for the
  # DN42 interfaces themselves so it does not hang on the broad per-tunnel
  # accepts above. Nothing new is accepted *from* DN42: replies, asymmetric
  # ones included (conntrack does not look at interfaces), pass NixOS's
  # `ct state established` before forward-allow, and new connections from
  # DN42 towards the clients' LANs are not this rule's to open.
  dn42ForwardRules =
    spec:
    let
      dn42 = dn42Interfaces spec;
    in
    util.optionalString (dn42 != [ ] && spec.links != { }) "iifname ${set (tunnelInterfaces spec)} oifname ${set dn42} accept\n";
in
spec: {
  table = defaults.nftables_table;
  family = "inet";
  content = content spec;
  ruleset = render [ (block "table inet ${defaults.nftables_table}" [ (filter (line: line != "") (util.lines (content spec))) ]) ];
  forwardRules =
    perInterface (name: "iifname \"${name}\" accept\noifname \"${name}\" accept\n") spec
    + dn42ForwardRules spec
    + util.optionalString (autopeerOn spec && spec.links != { }) "iifname ${set (tunnelInterfaces spec)} oifgroup ${apGroup} accept\n";
  # networking.firewall.extraInputRules: BGP from the autopeer interfaces, as
  # networking.firewall.interfaces opens it on every static DN42 interface.
  hostInputRules = util.optionalString (autopeerOn spec) "iifgroup ${apGroup} tcp dport 179 accept\n";
  # Replies from hosts behind the tunnel arrive on it; only BIRD's routes say
  # so, and a strict check may run before BIRD has installed them. The same
  # for DN42: with two peers, a reply often comes back through the other
  # one (DN42 routing is asymmetric), where a strict check drops it.
  reversePathRules =
    perInterface (name: "iifname \"${name}\" accept\n") spec
    + concatStringsSep "" (map (name: "iifname ${util.quote name} accept\n") (dn42Interfaces spec))
    + util.optionalString (autopeerOn spec) "iifgroup ${apGroup} accept\n";
}

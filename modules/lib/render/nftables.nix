# host spec -> our nftables table (masquerade) and the rules that belong in
# the host firewall's forward-allow and rpfilter-allow chains.
let
  inherit (builtins) attrValues concatStringsSep filter;
  util = import ../util.nix;
  defaults = import ../defaults.nix;
  inherit (import ./blocks.nix) block render;

  set = names: "{ ${concatStringsSep ", " (map util.quote names)} }";

  tunnelInterfaces = spec: map (link: link.interface) (attrValues spec.links);

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
      util.optional (outbound != [ ] && spec.links != { }) "iifname ${set (tunnelInterfaces spec)} oifname ${set outbound} masquerade";

  content =
    spec:
    render [
      (block "chain postrouting" (
        [
          "type nat hook postrouting priority srcnat; policy accept;"
        ]
        ++ masqueradeRules spec
      ))
    ];

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
  forwardRules = perInterface (name: "iifname \"${name}\" accept\noifname \"${name}\" accept\n") spec + dn42ForwardRules spec;
  # Replies from hosts behind the tunnel arrive on it; only BIRD's routes say
  # so, and a strict check may run before BIRD has installed them. The same
  # for DN42: with two peers, a reply often comes back through the other
  # one (DN42 routing is asymmetric), where a strict check drops it.
  reversePathRules =
    perInterface (name: "iifname \"${name}\" accept\n") spec
    + concatStringsSep "" (map (name: "iifname ${util.quote name} accept\n") (dn42Interfaces spec));
}

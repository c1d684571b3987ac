# host spec -> our nftables table (masquerade) and the rules that belong in
# the host firewall's forward-allow and rpfilter-allow chains.
let
  inherit (builtins) attrValues concatStringsSep filter;
  util = import ../util.nix;
  defaults = import ../defaults.nix;
  inherit (import ./blocks.nix) block render;

  set = names: "{ ${concatStringsSep ", " (map util.quote names)} }";

  tunnelInterfaces = spec: map (link: link.interface) (attrValues spec.links);

  # Clients hide their LANs behind their tunnel address (the reflector's peer
  # may only admit that address); reflectors hide the tunnel subnets behind
  # their uplink and DN42 addresses, which the far side can route back to.
  masqueradeRule =
    spec:
    let
      tunnels = set (tunnelInterfaces spec);
      dn42Interfaces = filter (name: name != null) (map (peer: peer.interface) (attrValues spec.dn42Peers));
      outbound = spec.uplinkInterfaces ++ dn42Interfaces;
    in
    if spec.role == "client" then
      util.optional (spec.lanInterfaces != [ ]) "iifname ${set spec.lanInterfaces} oifname ${tunnels} masquerade"
    else
      util.optional (outbound != [ ]) "iifname ${tunnels} oifname ${set outbound} masquerade";

  content =
    spec:
    render [
      (block "chain postrouting" (
        [
          "type nat hook postrouting priority srcnat; policy accept;"
        ]
        ++ masqueradeRule spec
      ))
    ];

  perInterface = template: spec: concatStringsSep "" (map template (tunnelInterfaces spec));
in
spec: {
  table = defaults.nftables_table;
  family = "inet";
  content = content spec;
  ruleset = render [ (block "table inet ${defaults.nftables_table}" [ (filter (line: line != "") (util.lines (content spec))) ]) ];
  forwardRules = perInterface (name: "iifname \"${name}\" accept\noifname \"${name}\" accept\n") spec;
  # Replies from hosts behind the tunnel arrive on it; only BIRD's routes say
  # so, and a strict check may run before BIRD has installed them.
  reversePathRules = perInterface (name: "iifname \"${name}\" accept\n") spec;
}

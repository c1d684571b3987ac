# Plan rules of a host's DN42 peers: neighbours against our own addresses.
let
  inherit (builtins)
    attrNames
    concatMap
    elem
    head
    ;
  inherit (import ./common.nix)
    ip
    t
    checks
    optional
    error
    valid
    mapHosts
    ;

  tunnelAddresses =
    plan:
    concatMap (
      linkName:
      let
        link = plan.links.${linkName};
      in
      concatMap (key: if link ? ${key} && plan._endBits.${linkName}.${key} != null then [ { inherit linkName key; bits = plan._endBits.${linkName}.${key}; } ] else [ ]) [
        "reflector_ipv4"
        "client_ipv4"
        "reflector_ipv6"
        "client_ipv6"
      ]
    ) (attrNames (plan.links or { }));

  dn42PeerRules =
    plan:
    let
      # Our tunnel addresses by their bits (none is null), built once: each
      # peer looks its neighbour up instead of scanning every link.
      ours = builtins.groupBy (a: a.bits) (tunnelAddresses plan);
    in
    mapHosts plan (
      hostName: host:
      concatMap (
        peerName:
        let
          peer = host.dn42_peers.${peerName};
          base = [ "hosts" hostName "dn42_peers" peerName ];
          kind = checks.addressKind peer.neighbor;
          bits = ip.bitsOf peer.neighbor;
          own = if bits == null then [ ] else ours.${bits} or [ ];
        in
        if !(valid t.address peer.neighbor) then
          [ (error (base ++ [ "neighbor" ]) (t.address.problem peer.neighbor)) ]
        else if elem kind [ "unspecified" "multicast" "loopback" ] then
          [ (error (base ++ [ "neighbor" ]) "${peer.neighbor} is a ${kind} address, not a neighbour's: give the peer's address for the session") ]
        else if own != [ ] then
          [ (error (base ++ [ "neighbor" ]) "${peer.neighbor} is our own tunnel address (links.${(head own).linkName}.${(head own).key}): give the DN42 peer's address") ]
        else
          # A tunnel the module runs has its interface (dn42-<peer> by default).
          optional (kind == "link-local" && !(peer ? interface) && !(peer ? public_key)) (
            error (base ++ [ "interface" ]) "is missing: the link-local neighbor ${peer.neighbor} is only reachable through a named interface"
          )
      ) (attrNames (host.dn42_peers or { }))
    );

in
{
  inherit
    dn42PeerRules
    ;
}

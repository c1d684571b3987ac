# Plan rules of the links: ends, subnets, addresses, a host's links, ports.
let
  inherit (builtins)
    attrNames
    concatMap
    elem
    elemAt
    filter
    head
    match
    ;
  inherit (import ./common.nix)
    util
    ip
    t
    checks
    optional
    families
    error
    warning
    names
    mapHosts
    mapLinks
    linkOf
    tokenError
    ;
  fields = import ../../grammar/fields.nix;

  # --- links ---------------------------------------------------------------

  linkEndRules =
    plan:
    let
      links = attrNames (plan.links or { });
      # Two reflectors may be joined either way round: one pair.
      pairOf =
        name:
        let
          ends = [ (toString plan.links.${name}.reflector) (toString plan.links.${name}.client) ];
        in
        builtins.concatStringsSep " " (builtins.sort builtins.lessThan ends);
      firsts = builtins.groupBy pairOf links;
    in
    concatMap (
      linkName:
      let
        link = plan.links.${linkName};
      in
      concatMap (
        role:
        let
          hostName = link.${role};
          host = plan.hosts.${hostName} or null;
          parts = [ "links" linkName role ];
        in
        if host == null then
          [ (error parts "names host ${t.show hostName}, which is not in [hosts] (hosts: ${names plan.hosts})") ]
        else if role == "client" && host.role == "reflector" && ((plan.hosts.${toString link.reflector} or { }).role or null) == "reflector" then
          # Two reflectors joined (issue #13): `client` is the one that dials.
          (
            if link.client == link.reflector then
              [ (error parts "is the reflector of this link too: a link joins two hosts; name another reflector or a client") ]
            else
              [ ]
          )
        else
          optional (host.role != role) (error parts "host \"${hostName}\" is a ${host.role}; name a ${role} here (or swap ends)")
      ) [ "reflector" "client" ]
    ) links
    ++ map (
      linkName:
      let
        link = plan.links.${linkName};
      in
      error [ "links" linkName ] "joins ${link.reflector} and ${link.client} again (links.${head firsts.${pairOf linkName}} already does); one link per pair of hosts"
    ) (checks.laterDuplicates pairOf links);

  linkSubnetRules =
    plan:
    mapLinks plan (
      linkName: link:
      let
        base = [ "links" linkName ];
        facts = plan._links.${linkName};
        v4 = facts.ipv4.subnet;
        v6 = facts.ipv6.subnet;
        kind6 = checks.addressKind v6.address;
        tokenProblem = family: optional (facts.${family}.problem != null) (error (base ++ [ family ]) facts.${family}.problem);
      in
      tokenProblem "ipv4"
      ++ optional (v4 != null && !(elem v4.length [ 30 31 ])) (
        error (base ++ [ "ipv4" ]) "${link.ipv4} is a /${toString v4.length}; a point-to-point tunnel takes a /30 or a /31"
      )
      ++ tokenProblem "ipv6"
      ++ optional (v6 != null && !(elem v6.length [ 64 127 ])) (
        error (base ++ [ "ipv6" ]) "${link.ipv6} is a /${toString v6.length}; the tunnel's IPv6 takes a /64 or /127"
      )
      ++ optional (v6 != null && kind6 == "link-local") (
        error (base ++ [ "ipv6" ]) "${link.ipv6} is link-local: BIRD learns no next hop from fe80::/10, so IPv6 routes would be withdrawn; use a global or ULA (fd00::/8) subnet"
      )
      ++ optional (v6 != null && elem kind6 [ "multicast" "loopback" "unspecified" ]) (
        error (base ++ [ "ipv6" ]) "${link.ipv6} is not a unicast subnet; use a global or ULA one"
      )
    );

  usableHint =
    family: subnet:
    let
      network = ip.networkOf "${subnet.address}/${toString subnet.length}";
    in
    if family == "ipv4" && subnet.length >= 30 then
      "use one of its ${if subnet.length == 31 then "two addresses" else "two host addresses"} (${network})"
    else
      "use an address inside ${network} other than its first";

  linkAddressRules =
    plan:
    mapLinks plan (
      linkName: link:
      concatMap (
        family:
        let
          facts = plan._links.${linkName}.${family};
          subnet = facts.subnet;
          kind = if family == "ipv4" then t.ipv4 else t.ipv6;
          ends = map (
            role:
            let
              value = link."${role}_${family}";
              problem = kind.problem value;
            in
            {
              inherit value problem;
              key = "${role}_${family}";
              bits = if problem == null then plan._endBits.${linkName}."${role}_${family}" else null;
            }
          ) [ "reflector" "client" ];
          endProblems =
            end:
            let
              parts = [ "links" linkName end.key ];
              where = "links.${linkName}.${family}";
              # The host part, compared as bits.
              host = builtins.substring subnet.length 128 end.bits;
              zeros = match "0*" host != null;
              ones = match "1*" host != null;
            in
            if end.problem != null then
              [ (error parts end.problem) ]
            else if subnet == null then
              [ ]
            else if !(util.hasPrefix facts.bits end.bits) then
              [ (error parts "${end.value} is outside ${where} (${facts.text}); ${usableHint family subnet}") ]
            else if family == "ipv4" && subnet.length < 31 && (zeros || ones) then
              [ (error parts "${end.value} is the network or broadcast address of ${facts.text}; ${usableHint family subnet}") ]
            else
              optional (family == "ipv6" && subnet.length == 64 && zeros) (
                error parts "${end.value} is the subnet-router anycast address of ${facts.text}; ${usableHint family subnet}"
              );
          first = elemAt ends 0;
          second = elemAt ends 1;
        in
        concatMap endProblems ends
        ++ optional (first.bits != null && first.bits == second.bits) (
          error [ "links" linkName "client_${family}" ] "${second.value} is also the reflector's address; the two ends need different addresses"
        )
      ) families
    );

  # host name -> names of the links it is an end of, grouped once.
  linksByHost =
    plan:
    builtins.mapAttrs (_: ends: map (end: end.link) ends) (
      builtins.groupBy (end: end.host) (
        concatMap (
          linkName:
          let
            link = plan.links.${linkName};
          in
          [ { host = link.reflector; link = linkName; } ]
          ++ optional (link.client != link.reflector) { host = link.client; link = linkName; }
        ) (attrNames (plan.links or { }))
      )
    );

  hostLinkRules =
    plan:
    let
      reflectors = filter (name: plan.hosts.${name}.role == "reflector") (attrNames plan.hosts);
      byHost = linksByHost plan;
    in
    mapHosts plan (
      hostName: host:
      let
        links = byHost.${hostName} or [ ];
        portOf = linkName: toString (linkOf plan.links.${linkName}).port;
        portOwners = builtins.groupBy portOf links;
        interfaceOf = linkName: (linkOf plan.links.${linkName}).interface;
        hostInterfaces =
          map (name: { inherit name; owner = "hosts.${hostName}.lan_interfaces"; }) (host.lan_interfaces or [ ])
          ++ map (name: { inherit name; owner = "hosts.${hostName}.uplink_interfaces"; }) (host.uplink_interfaces or [ ])
          ++ concatMap (
            peerName: let peer = host.dn42_peers.${peerName}; in optional (peer ? interface) { name = peer.interface; owner = "hosts.${hostName}.dn42_peers.${peerName}"; }
          ) (attrNames (host.dn42_peers or { }));
        taken = builtins.groupBy (x: x.name) (hostInterfaces ++ map (linkName: { name = interfaceOf linkName; owner = "links.${linkName}"; }) links);
        linkInterfaceClash =
          linkName:
          let
            name = interfaceOf linkName;
            owners = taken.${name};
            earlier = head owners;
          in
          optional (earlier.owner != "links.${linkName}") (
            error [ "links" linkName "interface" ] "\"${name}\" is already used on host ${hostName} by ${earlier.owner}; give this link its own interface name"
          );
      in
      (
        if links == [ ] then
          (
            if host.role == "client" then
              [
                (error [ "hosts" hostName ] "client ${hostName} has no link; add [links.${hostName}] with client = \"${hostName}\" and reflector = \"${
                  if reflectors == [ ] then "<a reflector>" else head reflectors
                }\"")
              ]
            else
              [ (warning [ "hosts" hostName ] "reflector ${hostName} has no link, so no client uses it; add a [links.<name>] with reflector = \"${hostName}\"") ]
          )
        else
          [ ]
      )
      ++ map (
        linkName: error [ "links" linkName "port" ] "${portOf linkName} is also the port of links.${head portOwners.${portOf linkName}} on host ${hostName}; give each link on a host its own port"
      ) (checks.laterDuplicates portOf links)
      ++ concatMap linkInterfaceClash links
    );

  # A link's WireGuard port against the ports BIRD binds itself (BFD).
  # mtu, ...: the fields.nix link fields marked `check`.
  linkFieldRules = plan: mapLinks plan (linkName: link: fields.planChecks "link" tokenError (key: [ "links" linkName key ]) link);

  linkPortRules = plan: mapLinks plan (linkName: link: let p = checks.portProblem (linkOf link).port; in optional (p != null) (error [ "links" linkName "port" ] p));

in
{
  inherit
    linkEndRules
    linkSubnetRules
    linkAddressRules
    linksByHost
    hostLinkRules
    linkPortRules
    linkFieldRules
    ;
}

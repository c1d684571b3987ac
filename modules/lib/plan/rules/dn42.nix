# The plan rules of DN42 peering (tunnels, communities, ROA), as findings
# { path; severity; message; } with TOML paths. plan/problems.nix passes its
# helpers and adds these to its rules.
{
  error,
  warning,
  tokenError,
  mapHosts,
  linkOf,
}:
let
  inherit (builtins) attrNames concatMap filter head length elem isInt;
  util = import ../../base/util.nix;
  t = import ../../grammar/tokens.nix;
  checks = import ../../grammar/checks.nix;
  ip = import ../../base/ip.nix;
  d = import ../../base/dn42-defaults.nix;
  inherit (util) optional;

  # NeoNetwork's range is interconnected with DN42 and peers with it.
  inNeoNetwork = asn: asn >= 4201270000 && asn <= 4201279999;

  when = cond: list: if cond then list else [ ];

  portOf = peer: if isInt (peer.listen_port or null) then peer.listen_port else if isInt (peer.asn or null) then d.listenPort peer.asn else null;
  interfaceOf = name: peer: peer.interface or "dn42-${name}";

  peerRules =
    plan: hostName: host: name: peer:
    let
      base = [ "hosts" hostName "dn42_peers" name ];
      at = key: base ++ [ key ];
      kind = if isInt (peer.asn or null) then checks.asnKind peer.asn else null;
      tunnel = peer ? public_key;
      importLimit = if isInt (peer.import_limit or null) then peer.import_limit else ((import ../../grammar/fields.nix).specDefaults "dn42Peer").importLimit;
      neighborKind = if t.address.problem (peer.neighbor or null) == null then checks.addressKind peer.neighbor else null;
    in
    optional (kind == "reserved" || kind == "public") (
      error (at "asn") "${toString peer.asn} is not a DN42 ASN: DN42 peers have 4242420000-4242429999 (NeoNetwork 4201270000-4201279999); check the peer's aut-num in the registry"
    )
    ++ optional (kind == "private" && !(inNeoNetwork peer.asn)) (
      warning (at "asn") "${toString peer.asn} is a private ASN outside DN42's 4242420000-4242429999: fine for a network of your own, but a DN42 peer has a registered DN42 ASN"
    )
    # public_key, endpoint, link_local, ...: the fields.nix tunnel fields marked `check`.
    ++ (import ../../grammar/fields.nix).planChecks "dn42Tunnel" tokenError at peer
    # latency, bandwidth, crypto, ...: the fields.nix fields marked `check`.
    ++ (import ../../grammar/fields.nix).planChecks "dn42Peer" tokenError at peer
    ++ optional (tunnel && !(peer ? link_local)) (
      error (at "link_local") "is missing: the tunnel needs our link-local address with /64, such as fe80::38/64 (the peer's is `neighbor`)"
    )
    ++ optional (!tunnel && (peer ? link_local || peer ? endpoint || peer ? listen_port || peer ? preshared_key)) (
      error (at "public_key") "is missing: the tunnel settings of this peer (link_local, endpoint, listen_port, preshared_key) only apply to a tunnel the module runs, which needs the peer's WireGuard public key"
    )
    ++ optional ((peer ? ipv4) != (peer ? peer_ipv4)) (
      error (at (if peer ? ipv4 then "peer_ipv4" else "ipv4")) "is missing: the IPv4 point-to-point pair needs both ipv4 (ours) and peer_ipv4 (the peer's)"
    )
    ++ optional ((peer ? ipv4 || peer ? peer_ipv4) && !tunnel) (
      error (at "ipv4") "only applies to a tunnel the module runs: set public_key, or put the address on the interface yourself"
    )
    ++ optional (tunnel && neighborKind == "link-local" && peer ? link_local && t.dn42.linkLocalCidr.problem peer.link_local == null
      && ip.bitsOf peer.neighbor == ip.bitsOf (ip.addressOf peer.link_local)) (
      error (at "neighbor") "${peer.neighbor} is our own link_local address: give the peer's link-local address"
    )
    ++ optional (tunnel && neighborKind != null && neighborKind != "link-local" && !(elem peer.neighbor [ (peer.peer_ipv4 or null) ])) (
      warning (at "neighbor") "${peer.neighbor} is neither the peer's link-local address nor its peer_ipv4: DN42 peers expect one session over IPv6 link-local (neighbor = \"fe80::...\")"
    )
    ++ optional (tunnel && !(peer ? interface) && t.interface.problem (interfaceOf name peer) != null) (
      error (at "interface") "is missing and the default dn42-${name} is longer than 15 characters: name the tunnel's interface"
    )
    # BIRD counts at least as many routes for the receive limit as for the import one.
    ++ optional (isInt (peer.receive_limit or null) && peer.receive_limit >= 1 && peer.receive_limit < importLimit) (
      warning (at "receive_limit") "${toString peer.receive_limit} is below import_limit (${toString importLimit}): BIRD counts every route it keeps for the receive limit, so it blocks first and the import limit is never reached; set receive_limit at or above import_limit, or lower import_limit"
    )
    # latency = "auto" pings the neighbour through the peer's own interface.
    ++ optional ((peer.latency or null) == "auto" && !tunnel && !(peer ? interface)) (
      error (at "latency") "\"auto\" measures the round trip through the peer's interface: set `interface` (or a tunnel, public_key), or give a class 1-9"
    );

  # RPKI over RTR: the source, the local cache's port and the caches BIRD asks
  # (addresses only, at most as many as bird.conf has protocol names for).
  rtrRules =
    hostName: roa:
    let
      at = key: [ "hosts" hostName "dn42_roa" key ];
      caches = roa.rtr_caches or [ ];
      symbols = import ../../grammar/dn42-symbols.nix;
      isRecord = c: builtins.isAttrs c;
      cacheAt = i: key: [ "hosts" hostName "dn42_roa" "rtr_caches" i key ];
      keyOf = c: "${toString (c.address or "")} ${toString (c.port or "")}";
    in
    optional (roa ? source && !(elem roa.source [ "files" "rtr" ])) (
      error (at "source") "${builtins.toJSON roa.source} is not \"files\" or \"rtr\""
    )
    ++ when (roa ? json_url) (tokenError t.dn42.url (at "json_url") roa.json_url)
    ++ when (roa ? rtr_port) (tokenError t.dn42.rtrListenPort (at "rtr_port") roa.rtr_port)
    ++ optional (elem (roa.rtr_port or null) (import ../../base/defaults.nix).exporter_ports) (
      error (at "rtr_port") "${toString roa.rtr_port} is a monitoring exporter's port: give the local RTR cache another (the default is ${toString d.rtr_port})"
    )
    ++ (
      if !builtins.isList caches then
        [ (error (at "rtr_caches") "is not a list of { address, port } tables") ]
      else
        optional (length caches > symbols.maxRtrCaches) (
          error (at "rtr_caches") "lists ${toString (length caches)} caches: at most ${toString symbols.maxRtrCaches}"
        )
        ++ concatMap (
          i:
          let
            c = builtins.elemAt caches i;
          in
          if !(isRecord c) then
            [ (error [ "hosts" hostName "dn42_roa" "rtr_caches" i ] "is not a { address, port } table") ]
          else
            (if c ? address then tokenError t.address (cacheAt i "address") c.address else [ (error (cacheAt i "address") "is missing: give the cache's IP address") ])
            ++ (if c ? port then tokenError t.dn42.rtrPort (cacheAt i "port") c.port else [ (error (cacheAt i "port") "is missing: give the cache's TCP port (stayrtr: 8282)") ])
            ++ optional (builtins.any (j: isRecord (builtins.elemAt caches j) && keyOf (builtins.elemAt caches j) == keyOf c) (builtins.genList (j: j) i)) (
              error [ "hosts" hostName "dn42_roa" "rtr_caches" i ] "repeats an earlier cache: list each cache once"
            )
        ) (builtins.genList (i: i) (length caches))
    )
    ++ optional ((roa.source or "files") != "rtr" && (roa ? json_url || roa ? rtr_port || roa ? rtr_caches)) (
      warning (at "source") "is \"files\" but json_url, rtr_port or rtr_caches is set: they apply only with source = \"rtr\""
    );

  roaRules =
    hostName: host:
    let
      roa = host.dn42_roa or { };
      at = key: [ "hosts" hostName "dn42_roa" key ];
    in
    when (roa ? ipv4_url) (tokenError t.dn42.url (at "ipv4_url") roa.ipv4_url)
    ++ when (roa ? ipv6_url) (tokenError t.dn42.url (at "ipv6_url") roa.ipv6_url)
    ++ when (roa ? interval) (tokenError t.dn42.interval (at "interval") roa.interval)
    ++ optional (roa ? allow_insecure_urls && !builtins.isBool roa.allow_insecure_urls) (
      error (at "allow_insecure_urls") "is not true or false"
    )
    ++ concatMap (
      key:
      optional (roa ? ${key} && builtins.isString roa.${key} && builtins.match "http://.*" roa.${key} != null && (roa.allow_insecure_urls or false) != true) (
        error (at key) "${roa.${key}} is plain http://, which anyone on the path can rewrite: use https://, or set allow_insecure_urls = true"
      )
    ) [ "ipv4_url" "ipv6_url" "json_url" ]
    ++ rtrRules hostName roa
    ++ optional (roa != { } && (host.dn42_peers or { }) == { }) (
      warning [ "hosts" hostName "dn42_roa" ] "is set but this host has no dn42_peers: ROA only filters routes from DN42 peers"
    );

  # This host's links (either end), in name order, from an index built once
  # per plan (withLinksByHost): every host asking costs links, not hosts × links.
  linksOf = plan: hostName: plan._linksByHost.${hostName} or [ ];
  withLinksByHost =
    plan:
    plan
    // {
      _linksByHost = builtins.mapAttrs (_: ends: map (end: end.linkName) ends) (
        builtins.groupBy (end: end.host) (
          concatMap (
            linkName:
            let
              l = plan.links.${linkName};
              ends = filter builtins.isString [ (l.reflector or null) (l.client or null) ];
            in
            map (host: { inherit host linkName; }) (if length ends == 2 && head ends == builtins.elemAt ends 1 then [ (head ends) ] else ends)
          ) (attrNames (plan.links or { }))
        )
      );
    };

  # Our UDP ports and interface names on one host: DN42 peers against each
  # other, the iBGP links this host is an end of (both ends bind the link's
  # port) and its uplinks (checks.dn42Clashes, as the module's rules).
  clashRules =
    plan: hostName: host:
    let
      peers = host.dn42_peers or { };
      links = linksOf plan hostName;
      at = name: key: [ "hosts" hostName "dn42_peers" name key ];
      clashes = checks.dn42Clashes {
        peers = map (name: let peer = peers.${name}; in {
          inherit name;
          interface = interfaceOf name peer;
          explicitInterface = peer ? interface;
          port = portOf peer;
          tunnel = peer ? public_key;
        }) (attrNames peers);
        interfaces =
          map (linkName: { name = (linkOf plan.links.${linkName}).interface; owner = "the interface of links.${linkName}"; }) links
          ++ map (entry: { name = entry; owner = "one of hosts.${hostName}.uplink_interfaces"; }) (host.uplink_interfaces or [ ])
          ++ map (entry: { name = entry; owner = "one of hosts.${hostName}.lan_interfaces"; }) (host.lan_interfaces or [ ]);
        ports = map (linkName: { port = (linkOf plan.links.${linkName}).port; owner = "links.${linkName}.port"; }) links;
        peerOwner = name: "hosts.${hostName}.dn42_peers.${name}";
      };
    in
    map (
      c:
      error (at c.name (if c.key == "interface" then "interface" else if peers.${c.name} ? listen_port then "listen_port" else "asn")) (
        if c.key == "port" && !(peers.${c.name} ? listen_port) then "${c.message} (the default port is 2 + the last four digits of the ASN)" else c.message
      )
    ) clashes;

  # Export sets hold DN42 space only: anything else would be originated into
  # DN42 as ours.
  exportRules =
    plan: hostName: host:
    concatMap (
      name:
      let
        sets = (import ../../base/defaults.nix).prefix_sets // (plan.prefix_sets or { });
        list = host.dn42_peers.${name}.export_sets or [ ];
      in
      concatMap (
        index:
        let
          setName = builtins.elemAt list index;
          outside = if builtins.isString setName && sets ? ${setName} then checks.outsideDn42 sets.${setName} else [ ];
        in
        optional (outside != [ ]) (
          error [ "hosts" hostName "dn42_peers" name "export_sets" index ] (checks.exportProblem setName outside)
        )
      ) (builtins.genList (i: i) (length list))
    ) (attrNames (host.dn42_peers or { }));

  # What the /32 peer route of a tunnel's IPv4 pair must not capture.
  peerIpv4Rules =
    plan: hostName: host:
    let
      peers = host.dn42_peers or { };
      links = linksOf plan hostName;
      subnets = concatMap (
        linkName:
        let
          facts = plan._links.${linkName}.ipv4;
        in
        optional (facts.subnet != null) { inherit (facts) bits text; owner = "links.${linkName}.ipv4"; }
      ) links;
      endpoints =
        concatMap (
          name:
          let
            address = checks.endpointIpv4 (peers.${name}.endpoint or null);
          in
          optional (peers.${name} ? public_key && address != null) { inherit address; owner = "the endpoint of DN42 peer ${name}'s tunnel (hosts.${hostName}.dn42_peers.${name}.endpoint)"; }
        ) (attrNames peers)
        ++ concatMap (
          linkName:
          let
            reflector = plan.links.${linkName}.reflector or null;
            address = (plan.hosts.${toString reflector} or { }).endpoint or null;
          in
          optional ((plan.links.${linkName}.client or null) == hostName && builtins.isString address && ip.familyOf address == "ipv4") {
            inherit address;
            owner = "the endpoint this host dials for links.${linkName} (hosts.${reflector}.endpoint)";
          }
        ) links;
    in
    concatMap (
      name:
      let
        peer = peers.${name};
        usable = key: peer ? ${key} && t.ipv4.problem peer.${key} == null;
        p = checks.peerIpv4Problem {
          ipv4 = if usable "ipv4" then peer.ipv4 else null;
          peerIpv4 = peer.peer_ipv4;
          inherit subnets endpoints;
        };
      in
      optional (peer ? public_key && usable "peer_ipv4" && p != null) (error [ "hosts" hostName "dn42_peers" name "peer_ipv4" ] p)
    ) (attrNames peers);

  nameRules =
    hostName: host:
    concatMap (
      name:
      let
        p = if t.name.problem name == null then checks.dn42PeerNameProblem name else null;
      in
      optional (p != null) (error [ "hosts" hostName "dn42_peers" name ] p)
    ) (attrNames (host.dn42_peers or { }));
in
given:
let
  plan = withLinksByHost given;
in
mapHosts plan (
  hostName: host:
  concatMap (name: peerRules plan hostName host name host.dn42_peers.${name}) (attrNames (host.dn42_peers or { }))
  ++ roaRules hostName host
  ++ clashRules plan hostName host
  ++ exportRules plan hostName host
  ++ peerIpv4Rules plan hostName host
  ++ nameRules hostName host
  # dn42_public_key: the host fields marked `check` (fields.nix).
  ++ (import ../../grammar/fields.nix).planChecks "host" tokenError (key: [ "hosts" hostName key ]) host
)

# Plan rules of the network and its hosts: ASN, names, prefix sets and their
# references, router ids, keys, endpoints, roles, inbound, interface names.
let
  inherit (builtins)
    attrNames
    concatMap
    concatStringsSep
    elem
    filter
    head
    match
    ;
  inherit (import ./common.nix)
    t
    checks
    optional
    families
    error
    warning
    indexed
    names
    tokenError
    valid
    mapHosts
    mapLinks
    linkOf
    knownSets
    ;

  # --- the network ---------------------------------------------------------

  asnRules =
    plan:
    let
      kind = if valid t.asn plan.asn then checks.asnKind plan.asn else "invalid";
    in
    tokenError t.asn [ "asn" ] plan.asn
    ++ optional (kind == "reserved") (error [ "asn" ] "${toString plan.asn} is a reserved ASN; use your own (DN42: 424242xxxx)")
    ++ optional (kind == "private") (
      warning [ "asn" ] "${toString plan.asn} is a private ASN outside the DN42 range 4242420000-4242429999: fine for a network of your own, but DN42 peers expect your registered DN42 ASN"
    )
    ++ optional (kind == "public") (warning [ "asn" ] "${toString plan.asn} is a public ASN: use it only if it is assigned to you; DN42 ASNs are 4242420000-4242429999")
    ++ mapHosts plan (
      hostName: host:
      concatMap (
        peerName:
        let
          peer = host.dn42_peers.${peerName};
          parts = [ "hosts" hostName "dn42_peers" peerName "asn" ];
        in
        if peer.asn == plan.asn then
          [ (error parts "${toString peer.asn} is this network's own ASN; a DN42 peer is an eBGP neighbour, give its ASN") ]
        else if checks.asnKind peer.asn == "reserved" then
          [ (error parts "${toString peer.asn} is a reserved ASN; give the peer's real ASN") ]
        else
          tokenError t.asn parts peer.asn
      ) (attrNames (host.dn42_peers or { }))
    );

  # Names become BIRD symbols, file names and sops keys: usable there, and
  # distinct once bird.conf has made identifiers of them.
  nameRules =
    plan:
    let
      groups = [
        { kind = "host"; base = [ "hosts" ]; set = plan.hosts; }
        { kind = "link"; base = [ "links" ]; set = plan.links or { }; }
        { kind = "prefix set"; base = [ "prefix_sets" ]; set = plan.prefix_sets or { }; }
      ]
      ++ map (hostName: {
        kind = "DN42 peer";
        base = [ "hosts" hostName "dn42_peers" ];
        set = plan.hosts.${hostName}.dn42_peers or { };
      }) (attrNames plan.hosts);
      groupProblems =
        group:
        let
          all' = attrNames group.set;
          good = filter (valid t.name) all';
          clashing = checks.collisions checks.identifierKey good;
          sameAs = name: filter (other: other != name && checks.identifierKey other == checks.identifierKey name) good;
        in
        map (name: error (group.base ++ [ name ]) "${group.kind} name ${t.name.problem name}") (filter (name: !(valid t.name name)) all')
        ++ map (
          name:
          error (group.base ++ [ name ]) "${group.kind} names ${concatStringsSep " and " (map (n: "\"${n}\"") ([ name ] ++ sameAs name))} become the same name in bird.conf and on disk ('-' and '.' turn into '_', case is ignored); rename one"
        ) clashing
        ++ map (
          name: error (group.base ++ [ name ]) "prefix set \"${name}\" would be defined as TUNNEL_NET_v4/v6, the name bird.conf gives the tunnels' own subnets; rename it"
        ) (if group.kind == "prefix set" then filter (name: elem (checks.identifierKey name) checks.generatedSetNames) good else [ ]);
    in
    concatMap groupProblems groups;

  prefixSetRules =
    plan:
    concatMap (
      setName:
      concatMap (
        family:
        concatMap (entry: tokenError (t.pattern family) [ "prefix_sets" setName family entry.index ] entry.value) (
          indexed (plan.prefix_sets.${setName}.${family} or [ ])
        )
      ) families
    ) (attrNames (plan.prefix_sets or { }));

  setReferenceRules =
    plan:
    let
      known = knownSets plan;
      refs =
        parts: list:
        concatMap (
          entry:
          optional (!(known ? ${entry.value})) (
            error (parts ++ [ entry.index ]) "names prefix set \"${entry.value}\", which is not defined; define [prefix_sets.${entry.value}] or use one of: ${names known}"
          )
        ) (indexed list);
    in
    mapHosts plan (
      hostName: host:
      refs [ "hosts" hostName "import_sets" ] (host.import_sets or [ ])
      ++ refs [ "hosts" hostName "kernel_export_sets" ] (host.kernel_export_sets or [ ])
      ++ concatMap (peerName: refs [ "hosts" hostName "dn42_peers" peerName "export_sets" ] (host.dn42_peers.${peerName}.export_sets or [ ])) (
        attrNames (host.dn42_peers or { })
      )
    );

  # --- hosts ---------------------------------------------------------------

  routerIdRules =
    plan:
    let
      hosts = attrNames plan.hosts;
      id = name: plan.hosts.${name}.router_id;
      usable = filter (name: valid t.routerId (id name)) hosts;
      owners = builtins.groupBy id usable;
    in
    concatMap (
      name:
      let
        p = t.routerId.problem (id name);
      in
      optional (p != null) (
        error [ "hosts" name "router_id" ] (
          if (id name) == "0.0.0.0" then p else "${t.show (id name)} is not an IPv4 dotted quad; BIRD router ids look like \"172.23.101.1\" (use one of your own IPv4 addresses)"
        )
      )
    ) hosts
    ++ map (name: error [ "hosts" name "router_id" ] "${id name} is also the router id of host ${head owners.${id name}}; router ids must be unique in the network") (
      checks.laterDuplicates id usable
    );

  publicKeyRules =
    plan:
    let
      keyOf = name: plan.hosts.${name}.public_key or null;
      withKey = filter (name: keyOf name != null) (attrNames plan.hosts);
      usable = filter (name: valid t.publicKey (keyOf name)) withKey;
      owners = builtins.groupBy keyOf usable;
    in
    map (
      name:
      error [ "hosts" name "public_key" ] "${t.show (keyOf name)} is not a WireGuard public key (44 characters of base64 encoding 32 bytes, as `wg pubkey` prints); remove it and run `ibgp-tunnel keys`"
    ) (filter (name: !(valid t.publicKey (keyOf name))) withKey)
    ++ map (
      name: error [ "hosts" name "public_key" ] "is the same key as host ${head owners.${keyOf name}}'s; every host needs its own key pair (run `ibgp-tunnel keys --rotate` for one of them)"
    ) (checks.laterDuplicates keyOf usable);

  endpointFindings =
    parts: endpoint:
    let
      kind = checks.addressKind endpoint;
    in
    if match "\\[.*" endpoint != null then
      [ (error parts "${t.show endpoint}: write an IPv6 endpoint without brackets or port") ]
    else if kind == null then
      (
        if match ".*:.*" endpoint != null then
          [ (error parts "${t.show endpoint} is not an address: write the address or DNS name alone, the port comes from each link's port") ]
        else
          optional (!(valid t.endpointHost endpoint)) (error parts "${t.show endpoint} is neither an IP address nor a DNS name")
      )
    else if !(valid t.endpointHost endpoint) then
      [ (error parts (t.endpointHost.problem endpoint)) ]
    else if elem kind [ "unspecified" "multicast" "loopback" ] then
      [ (error parts "${endpoint} is a ${kind} address, which clients cannot dial; use the reflector's public address") ]
    else
      optional (kind == "documentation") (
        warning parts "${endpoint} is a documentation address (an example); replace it with the reflector's public address"
      );

  roleRules =
    plan:
    optional (plan.hosts == { }) (error [ "hosts" ] "the plan has no hosts; add a [hosts.<name>] reflector and client")
    ++ mapHosts plan (
      hostName: host:
      let
        base = [ "hosts" hostName ];
      in
      if !(valid t.role host.role) then
        [ (error (base ++ [ "role" ]) (t.role.problem host.role)) ]
      else if host.role == "reflector" then
        optional ((host.lan_interfaces or [ ]) != [ ]) (
          error (base ++ [ "lan_interfaces" ]) "is for clients; a reflector masquerades tunnel traffic out of uplink_interfaces instead"
        )
        ++ (
          if host ? endpoint then
            endpointFindings (base ++ [ "endpoint" ]) host.endpoint
          else
            [ (error (base ++ [ "endpoint" ]) "is missing: a reflector needs the public address its clients dial, e.g. endpoint = \"203.0.113.10\"") ]
        )
      else
        map (key: error (base ++ [ key ]) "is for reflectors and would be ignored on a client; move it to the reflector or remove it") (
          filter (key: host ? ${key} && host.${key} != [ ] && host.${key} != { }) [ "endpoint" "uplink_interfaces" "dn42_peers" ]
        )
    );

  inboundRules =
    plan:
    mapHosts plan (
      hostName: host:
      let
        entries = indexed (host.dn42_inbound or [ ]);
        at = i: field: [ "hosts" hostName "dn42_inbound" i field ];
        check = entry: tokenError t.prefixAny (at entry.index "prefix") (entry.value.prefix or null)
          ++ tokenError t.inboundProto (at entry.index "proto") (entry.value.proto or null)
          ++ tokenError t.inboundPort (at entry.index "port") (entry.value.port or null);
      in
      if (host.role or null) == "reflector" && entries != [ ] then
        [ (error [ "hosts" hostName "dn42_inbound" ] "is a client's: put each entry on the client whose network holds the destination (the reflectors let it through from DN42)") ]
      else
        concatMap check entries
    );

  interfaceNameRules =
    plan:
    mapHosts plan (
      hostName: host:
      concatMap (
        key: concatMap (entry: tokenError t.interface [ "hosts" hostName key entry.index ] entry.value) (indexed (host.${key} or [ ]))
      ) [ "lan_interfaces" "uplink_interfaces" "accept_ra_interfaces" ]
      ++ concatMap (
        peerName:
        let
          peer = host.dn42_peers.${peerName};
        in
        if peer ? interface then tokenError t.interface [ "hosts" hostName "dn42_peers" peerName "interface" ] peer.interface else [ ]
      ) (attrNames (host.dn42_peers or { }))
    )
    ++ mapLinks plan (linkName: link: tokenError t.interface [ "links" linkName "interface" ] (linkOf link).interface);

  # Every address of every tunnel end: a DN42 neighbour there would be us.
in
{
  inherit
    asnRules
    nameRules
    prefixSetRules
    setReferenceRules
    routerIdRules
    publicKeyRules
    endpointFindings
    roleRules
    inboundRules
    interfaceNameRules
    ;
}

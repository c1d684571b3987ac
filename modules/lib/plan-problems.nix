# plan (builtins.fromTOML of hosts/plan.toml) -> [ { path; severity; message; } ]:
# every network rule a plan must follow beyond its shape, with TOML paths
# (links.pve.client_ipv4, prefix_sets.cf.ipv4[0]). `ibgp-tunnel check` asks
# for this after its shape layer (JSON Schema + pydantic); the NixOS module
# asserts it when services.ibgpTunnel.plan is set. A value that does not
# parse is reported once, by the rule that owns it; other rules skip it.
let
  inherit (builtins)
    all
    attrNames
    concatMap
    concatStringsSep
    elem
    elemAt
    filter
    genList
    head
    isString
    length
    listToAttrs
    match
    toJSON
    ;
  util = import ./util.nix;
  ip = import ./ip.nix;
  t = import ./tokens.nix;
  checks = import ./checks.nix;
  defaults = import ./defaults.nix;
  inherit (util) optional;

  families = [ "ipv4" "ipv6" ];

  # TOML's way of writing a path: bare keys, quoted where needed, [i] for
  # list items.
  tomlPath =
    parts:
    concatStringsSep "" (
      genList (
        i:
        let
          part = elemAt parts i;
        in
        if !(isString part) then
          "[${toString part}]"
        else
          (if i == 0 then "" else ".") + (if match "[A-Za-z0-9_-]+" part != null then part else toJSON part)
      ) (length parts)
    );

  finding = severity: parts: message: {
    path = tomlPath parts;
    inherit severity message;
  };
  error = finding "error";
  warning = finding "warning";

  # The index of each element, for list paths.
  indexed = list: genList (i: { index = i; value = elemAt list i; }) (length list);

  names = set: let listed = concatStringsSep ", " (attrNames set); in if listed == "" then "none" else listed;

  tokenError = kind: parts: value: let p = kind.problem value; in optional (p != null) (error parts p);

  valid = kind: value: kind.problem value == null;

  mapHosts = plan: f: concatMap (name: f name plan.hosts.${name}) (attrNames plan.hosts);
  mapLinks = plan: f: concatMap (name: f name plan.links.${name}) (attrNames (plan.links or { }));

  linkOf = link: {
    interface = link.interface or defaults.interface;
    port = link.port or defaults.port;
  };

  knownSets = plan: defaults.prefix_sets // (plan.prefix_sets or { });

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

  announceRules =
    plan:
    mapHosts plan (
      hostName: host:
      concatMap (
        family:
        concatMap (entry: tokenError (t.prefix family) [ "hosts" hostName "announce" family entry.index ] entry.value) (
          indexed (host.announce.${family} or [ ])
        )
      ) families
    );

  # What a client opens to DN42 (render/nftables.nix writes it into nft).
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
  tunnelAddresses =
    plan:
    concatMap (
      linkName:
      let
        link = plan.links.${linkName};
      in
      concatMap (key: if link ? ${key} && ip.bitsOf link.${key} != null then [ { inherit linkName key; bits = ip.bitsOf link.${key}; } ] else [ ]) [
        "reflector_ipv4"
        "client_ipv4"
        "reflector_ipv6"
        "client_ipv6"
      ]
    ) (attrNames (plan.links or { }));

  dn42PeerRules =
    plan:
    let
      ours = tunnelAddresses plan;
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
          own = filter (a: a.bits == bits) ours;
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

  # A link's subnet of `family`, parsed, or null if it is not a valid prefix.
  # Per link and family, parsed once and shared by the link rules and the
  # overlap sweep: the plan the rules see carries them as plan._links.
  linkFacts =
    link:
    listToAttrs (
      map (family: {
        name = family;
        value =
          let
            text = link.${family};
            problem = (t.prefix family).problem text;
            subnet = if problem == null then ip.parseCidr text else null;
          in
          {
            inherit text problem subnet;
            bits = if subnet == null then null else ip.prefixBits text;
          };
      }) families
    );

  withFacts = plan: plan // { _links = builtins.mapAttrs (_: linkFacts) (plan.links or { }); };


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
              bits = if problem == null then ip.bitsOf value else null;
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
        hostTaken = builtins.groupBy (x: x.name) hostInterfaces;
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
  linkPortRules = plan: mapLinks plan (linkName: link: let p = checks.portProblem (linkOf link).port; in optional (p != null) (error [ "links" linkName "port" ] p));

  linkSubnets =
    plan:
    concatMap (
      linkName:
      concatMap (
        family:
        let
          facts = plan._links.${linkName}.${family};
        in
        optional (facts.subnet != null) {
          inherit linkName family;
          inherit (facts) text bits;
        }
      ) families
    ) (attrNames (plan.links or { }));

  announced =
    plan:
    concatMap (
      hostName:
      concatMap (
        family:
        concatMap (
          entry:
          optional (valid (t.prefix family) entry.value) {
            inherit hostName family;
            inherit (entry) index value;
            where = "hosts.${hostName}.announce.${family}[${toString entry.index}]";
            bits = ip.prefixBits entry.value;
          }
        ) (indexed (plan.hosts.${hostName}.announce.${family} or [ ]))
      ) families
    ) (attrNames plan.hosts);

  # Sorted by family and bits, a prefix comes right before everything inside
  # it, and stays a prefix of every element up to the last of those: one sweep
  # with the chain of open prefixes (at most 129 deep) finds every overlap of
  # link subnets with each other and with announced prefixes, in n log n.
  overlapRules =
    plan:
    let
      items =
        map (s: s // { kind = "link"; key = "${s.family}/${s.bits}"; }) (linkSubnets plan)
        ++ map (a: a // { kind = "announce"; key = "${a.family}/${a.bits}"; }) (announced plan);
      sorted = builtins.sort (a: b: a.key < b.key || (a.key == b.key && (a.kind == "link" && b.kind != "link" || a.kind == b.kind && (a.linkName or a.where) < (b.linkName or b.where)))) items;
      # foldl' forces only the state itself: force its lists too, or each step
      # would hold a thunk of all the steps before it.
      step =
        state: item:
        let
          open = filter (o: util.hasPrefix o.key item.key) state.open;
          next = {
            open = open ++ [ item ];
            pairs = if open == [ ] then state.pairs else state.pairs ++ map (o: { first = o; second = item; }) open;
          };
        in
        builtins.seq (builtins.length next.open) (builtins.seq (builtins.length next.pairs) next);
      pairs = (builtins.foldl' step { open = [ ]; pairs = [ ]; } sorted).pairs;
      message =
        pair:
        let
          inherit (pair) first second;
        in
        if first.kind == "link" && second.kind == "link" then
          [ (error [ "links" second.linkName second.family ] "${second.text} overlaps links.${first.linkName}.${first.family} (${first.text}); give every link its own subnet") ]
        else if first.kind == "announce" && second.kind == "announce" then
          [ ]
        else
          let
            link = if first.kind == "link" then first else second;
            a = if first.kind == "link" then second else first;
          in
          [
            (error [ "links" link.linkName link.family ] "${link.text} overlaps ${a.where} (${a.value}): routes for it would compete with the tunnel; use a link subnet outside every announced prefix")
          ];
      linkPairs = filter (pair: pair.first.kind == "link" || pair.second.kind == "link") pairs;
      announcePairs = filter (pair: pair.first.kind == "announce" && pair.second.kind == "announce") pairs;
    in
    concatMap message linkPairs ++ announceOverlaps plan announcePairs;

  # The same prefix (or one inside another) announced by two clients: the
  # reflector passes DN42 one of the routes, so replies reach one site only.
  # (A client against a reflector it dials: misrouteRules.)
  # Intended anycast lists every such prefix under [anycast].
  announceOverlaps =
    plan: pairs:
    let
      # Reflectors announcing one prefix are redundant exits for it (traffic
      # leaves through either uplink, masqueraded), not two destinations.
      isClient = name: (plan.hosts.${name}.role or null) == "client";
      anycast = family: map ip.prefixBits (filter (valid (t.prefix family)) (plan.anycast.${family} or [ ]));
      isAnycast = a: elem a.bits (anycast a.family);
      refused = filter (
        pair:
        let
          inherit (pair) first second;
        in
        first.hostName != second.hostName
        && isClient first.hostName
        && isClient second.hostName
        && !(isAnycast first && isAnycast second)
      ) pairs;
      # One finding per announcement, naming the first it overlaps.
      bySecond = builtins.groupBy (pair: pair.second.where) refused;
    in
    map (
      where:
      let
        inherit (head bySecond.${where}) first second;
        same = first.bits == second.bits;
      in
      error [ "hosts" second.hostName "announce" second.family second.index ] "announce ${
        if same then "it" else "these addresses"
      } from one client only, or, if every client serves ${if same then "it" else "them"} itself, list ${
        if same then "it" else "both prefixes"
      } under [anycast] ${second.family}: ${second.value} ${
        if same then "is also" else "overlaps"
      } ${first.where} (${first.value}), and the reflector passes one route on to DN42, so only one site gets the replies"
    ) (attrNames bySecond);

  anycastRules =
    plan:
    concatMap (
      family: concatMap (entry: tokenError (t.prefix family) [ "anycast" family entry.index ] entry.value) (indexed (plan.anycast.${family} or [ ]))
    ) families;

  # --- misroutes -----------------------------------------------------------

  # Every set's patterns, parsed once (attribute values are memoised).
  parsedSets =
    plan:
    builtins.mapAttrs (
      _: set:
      listToAttrs (
        map (family: {
          name = family;
          value = filter (p: p != null) (map (checks.parsePattern family) (set.${family} or [ ]));
        }) families
      )
    ) (knownSets plan);

  patternsOf = parsed: family: setNames: concatMap (setName: (parsed.${setName} or { }).${family} or [ ]) (filter isString setNames);

  misrouteRules =
    plan:
    let
      ann = announced plan;
      annByHost = builtins.groupBy (a: a.hostName) ann;
      parsed = parsedSets plan;
      dialledBy = builtins.groupBy (linkName: plan.links.${linkName}.client) (attrNames (plan.links or { }));
    in
    mapHosts plan (
      hostName: host:
      let
        allow = host.allow_cover_everything or false;
        lists = [ "import_sets" "kernel_export_sets" ];
        # The reflectors this client dials, with their endpoint addresses.
        dialled = map (linkName: plan.links.${linkName}.reflector) (dialledBy.${hostName} or [ ]);
        endpoints = concatMap (
          reflector:
          let
            endpoint = plan.hosts.${reflector}.endpoint or null;
          in
          optional (endpoint != null && isString endpoint && ip.familyOf endpoint != null) { inherit reflector endpoint; }
        ) dialled;
        everything = key: family: !allow && checks.coversEverything (checks.reachNets (patternsOf parsed family (host.${key} or [ ])));
        coverEverything =
          key:
          concatMap (
            family:
            optional (everything key family) (
              error [ "hosts" hostName key ] "the ${family} sets named here together cover every address (e.g. 0.0.0.0/0+, or the two /1 halves): that routes all traffic, the tunnel's own included; narrow the sets, or set allow_cover_everything = true on this host if that is really meant"
            )
          ) families;
        coverEndpoint =
          key:
          concatMap (
            e:
            let
              family = ip.familyOf e.endpoint;
              hit = filter (p: checks.patternReaches p e.endpoint) (patternsOf parsed family (host.${key} or [ ]));
            in
            # Covering everything says it already.
            optional (host.role == "client" && hit != [ ] && !(everything key family)) (
              error [ "hosts" hostName key ] "these sets accept a route for ${e.endpoint}, the endpoint of reflector ${e.reflector}: the tunnel would be routed into itself; take that address out of the sets"
            )
          ) endpoints;
        myAnnounce = annByHost.${hostName} or [ ];
        reflectorAnnounce = concatMap (reflector: annByHost.${reflector} or [ ]) dialled;
        announceAll = concatMap (
          family:
          optional (!allow && checks.coversEverything (map (a: a.bits) (filter (a: a.family == family && a.bits != "") myAnnounce))) (
            error [ "hosts" hostName "announce" family ] "these prefixes together cover every ${family} address: announcing them is a default route in pieces; narrow them, or set allow_cover_everything = true on this host if that is really meant"
          )
        ) families;
        announceDefault = map (a: error [ "hosts" hostName "announce" a.family a.index ] "${a.value} is a default route: BIRD's filters reject it everywhere; announce the prefixes themselves") (
          filter (a: a.bits == "") myAnnounce
        );
        announceClash = concatMap (
          a:
          let
            clash = filter (r: r.family == a.family && checks.overlaps r.bits a.bits) reflectorAnnounce;
          in
          optional (host.role == "client" && clash != [ ]) (
            error [ "hosts" hostName "announce" a.family a.index ] "${a.value} overlaps ${(head clash).where} (${(head clash).value}), which reflector ${(head clash).hostName} announces too: each end would route it to the other; announce it on one side only"
          )
        ) myAnnounce;
      in
      concatMap coverEverything lists ++ concatMap coverEndpoint lists ++ announceAll ++ announceDefault ++ announceClash
    );

  # Over the defaults: a plan's hold time must suit the default keepalive too.
  tuningRules =
    plan:
    map (p: error [ "tuning" (snake p.key) ] p.message) (checks.tuningProblems (defaults.tuning // util.camelCaseAttrs (plan.tuning or { })));

  # "keepaliveTime" -> "keepalive_time"
  snake = util.snakeCase;

  # Two or more reflectors (issue #13): cluster ids, preferences, endpoints.
  reflectorRules = import ./reflector-rules.nix {
    inherit error warning tokenError valid t defaults util checks;
  };

  # DN42 tunnels, communities and ROA (./dn42-plan-problems.nix).
  dn42Rules = import ./dn42-plan-problems.nix { inherit error warning tokenError mapHosts linkOf; };

  rules = [
    asnRules
    nameRules
    prefixSetRules
    setReferenceRules
    routerIdRules
    publicKeyRules
    roleRules
    announceRules
    inboundRules
    anycastRules
    interfaceNameRules
    dn42PeerRules
    dn42Rules
    linkEndRules
    linkSubnetRules
    linkAddressRules
    hostLinkRules
    linkPortRules
    overlapRules
    misrouteRules
    tuningRules
    reflectorRules
  ];
in
given:
let
  plan = withFacts given;
  found = concatMap (rule: rule plan) rules;
  # Two rules may say the same thing the same way: say it once.
  distinct = builtins.groupBy (f: "${f.severity}\n${f.path}\n${f.message}") found;
in
map (key: head distinct.${key}) (attrNames distinct)

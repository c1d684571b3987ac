# host spec -> list of { path, message } for what option types cannot say
# (and, for a hand-made spec, what they would: every token's grammar). The
# NixOS module turns each into an assertion; a message names the option and
# how to fix it. Checkers shared with planProblems live in checks.nix.
let
  inherit (builtins)
    attrNames
    attrValues
    concatMap
    filter
    length
    match
    ;
  util = import ../base/util.nix;
  ip = import ../base/ip.nix;
  checks = import ../grammar/checks.nix;
  renderSpec = import ./shape.nix;
  inherit (util) optional;

  problem = path: message: { inherit path message; };

  root = "services.ibgpTunnel";

  # A file path, not the key: a literal key or a Nix path would be copied
  # into the world-readable Nix store.
  # (Its grammar, the store included, is the runtimePath token's.)
  keyFile = path: file:
    optional (file == null) (problem path "is not set: point it at a file outside the Nix store (with sops-nix: leave it unset and set ${root}.sops.file)");

  setReferences = spec: path: names:
    map (name: problem path "names prefix set \"${name}\", which ${root}.prefixSets does not define (defined: ${builtins.concatStringsSep ", " (attrNames spec.prefixSets)})")
      (filter (name: !(spec.prefixSets ? ${name})) names);

  linkProblems = spec: name: link:
    let
      path = "${root}.links.${name}";
      parsed = map ip.parseCidr link.ips;
      v4 = filter (c: c != null && c.family == "ipv4") parsed;
      v6 = filter (c: c != null && c.family == "ipv6") parsed;
      cidrOf = c: "${c.address}/${toString c.length}";
      isClient = spec.role == "client";
    in
    optional (length v4 != 1) (problem "${path}.ips" "needs exactly one IPv4 address (the tunnel's /30 or /31), found ${toString (length v4)}")
    ++ optional (length v6 != 1) (problem "${path}.ips" "needs exactly one global IPv6 address (the tunnel's /64 or /127), found ${toString (length v6)}; IPv6 routes over the IPv4 session need it (seed pitfall 4)")
    ++ concatMap (c:
      optional (c.length != 30 && c.length != 31) (problem "${path}.ips" "${cidrOf c}: a point-to-point tunnel takes a /30 or /31")
      ++ optional (ip.isNetworkOrBroadcast4 (cidrOf c) c.address) (problem "${path}.ips" "${cidrOf c} is the network or broadcast address of its /30: use one of the two host addresses")
      ++ optional (!(ip.inSubnet (cidrOf c) link.neighborAddress)) (problem "${path}.neighborAddress" "${link.neighborAddress} is not inside the link subnet ${cidrOf c}: use the other end's tunnel address")
      ++ optional (c.address == link.neighborAddress) (problem "${path}.neighborAddress" "${link.neighborAddress} is this host's own address: use the other end's tunnel address")
    ) v4
    ++ concatMap (c:
      optional (c.length != 64 && c.length != 127) (problem "${path}.ips" "${cidrOf c}: the tunnel's IPv6 takes a /64 or /127")
      ++ optional (ip.isLinkLocal6 c.address) (problem "${path}.ips" "${cidrOf c} is link-local: BIRD's direct protocol does not learn fe80::/10, so IPv6 routes would have no next hop; use a global or ULA address (seed pitfall 4)")
    ) v6
    ++ (let p = checks.portProblem link.listenPort; in optional (p != null) (problem "${path}.listenPort" p))
    ++ optional (link.peer.publicKey == null) (problem "${path}.peer.publicKey" "is not set: run `ibgp-tunnel keys` to generate keys and write the public keys into the plan")
    ++ keyFile "${path}.peer.presharedKeyFile" link.peer.presharedKeyFile
    ++ optional (isClient && link.peer.endpoint == null) (problem "${path}.peer.endpoint" "is not set: a client dials its reflector, give \"host:port\" (the VPS's public address and ${toString link.listenPort})");

  roleProblems = spec:
    if spec.role == "client" then
      optional (spec.dn42Peers != { }) (problem "${root}.dn42Peers" "is set on a client: eBGP to DN42 peers runs on the reflector (the VPS); move these peers to it")
      ++ optional (spec.uplinkInterfaces != [ ]) (problem "${root}.uplinkInterfaces" "is set on a client: clients masquerade ${root}.lanInterfaces into the tunnel instead")
    else
      optional (spec.lanInterfaces != [ ]) (problem "${root}.lanInterfaces" "is set on a reflector: reflectors masquerade tunnel traffic out of ${root}.uplinkInterfaces instead");

  # Set names bird.conf cannot tell apart, or that it uses itself.
  setNameProblems =
    spec:
    let
      names = filter (name: checks.identifierKey name != "") (attrNames spec.prefixSets);
    in
    map (name: problem "${root}.prefixSets.${name}" "becomes the same BIRD name as another set (${builtins.concatStringsSep ", " (filter (other: other != name && checks.identifierKey other == checks.identifierKey name) names)}): '-' and '.' turn into '_' and case is ignored; rename one")
      (checks.collisions checks.identifierKey names)
    ++ map (name: problem "${root}.prefixSets.${name}" "would be defined as TUNNEL_NET_v4/v6, the name bird.conf gives the tunnels' own subnets; rename it")
      (filter (name: builtins.elem (checks.identifierKey name) checks.generatedSetNames) names);

  # BIRD protocol names ibgp_<peer> and dn42_<name> must differ.
  protocolNameProblems =
    spec:
    map (name: problem "${root}.links.${name}.peer.name" "\"${spec.links.${name}.peer.name}\" names the same BIRD protocol as another link's peer (ibgp_<name>, case ignored): give each link's peer its own name")
      (checks.collisions (name: checks.identifierKey spec.links.${name}.peer.name) (attrNames spec.links))
    ++ map (name: problem "${root}.dn42Peers.${name}" "becomes the same BIRD protocol name as another DN42 peer (dn42_<name>, case ignored): rename one")
      (checks.collisions checks.identifierKey (attrNames spec.dn42Peers));

  # Misroutes a single host can see: sets that cover everything, or a
  # client's sets that cover the endpoint it dials (the tunnel into itself).
  patterns = spec: family: names: filter (p: p != null) (concatMap (name: map (checks.parsePattern family) ((spec.prefixSets.${name} or { }).${family} or [ ])) names);

  misrouteProblems =
    spec:
    let
      allow = (spec.allowCoverEverything or false) == true; # a non-bool is the shape's to report
      endpoints = filter (e: e != null) (map (link: let e = link.peer.endpoint; m = if e == null then null else match "[[]?([^]]*)[]]?:[0-9]+" e; in if m == null || ip.familyOf (builtins.head m) == null then null else builtins.head m) links);
      links = attrValues spec.links;
      everything = names: family: !allow && checks.coversEverything (checks.reachNets (patterns spec family names));
      listProblems = option: names:
        concatMap (family:
          optional (everything names family) (
            problem "${root}.${option}" "the ${family} sets named here together cover every address (e.g. 0.0.0.0/0+, or the two /1 halves): that routes all traffic, the tunnel's own included; narrow the sets, or set ${root}.allowCoverEverything = true if that is really meant")
        ) [ "ipv4" "ipv6" ]
        ++ concatMap (address:
          optional (spec.role == "client" && !(everything names (ip.familyOf address)) && builtins.any (p: checks.patternReaches p address) (patterns spec (ip.familyOf address) names)) (
            problem "${root}.${option}" "these sets accept a route for ${address}, the endpoint this client dials: the tunnel would be routed into itself; take that address out of the sets")
        ) endpoints;
      announced = family: filter (b: b != null) (map ip.prefixBits (spec.announce.${family} or [ ]));
    in
    listProblems "importSets" spec.importSets
    ++ listProblems "kernelExportSets" spec.kernelExportSets
    ++ concatMap (family:
      optional (!allow && checks.coversEverything (filter (b: b != "") (announced family))) (
        problem "${root}.announce.${family}" "these prefixes together cover every ${family} address: announcing them is a default route in pieces; narrow them, or set ${root}.allowCoverEverything = true if that is really meant")
      ++ optional (builtins.elem "" (announced family)) (
        problem "${root}.announce.${family}" "holds a default route: BIRD's filters reject it everywhere; announce the prefixes themselves")
    ) [ "ipv4" "ipv6" ];

  # A client's choice between reflectors, and what only a reflector's link
  # may say (issue #13): the plan rules say the same of the plan
  # (plan/rules/reflectors.nix).
  reflectorChoiceProblems =
    spec:
    let
      names = attrNames spec.links;
      # A preference of the wrong type is the shape's problem (renderSpec).
      preferenceOf = name: let p = spec.links.${name}.preference or null; in if builtins.isInt p then p else 100;
      isClient = spec.role == "client";
      chooses = isClient && length names > 1;
    in
    concatMap (
      name:
      let
        link = spec.links.${name};
        path = "${root}.links.${name}";
        below = checks.preferenceBelowRanks (preferenceOf name) (length names);
      in
      optional (isClient && (link.reflectorPeer or false) == true) (
        problem "${path}.reflectorPeer" "is set on a client: only a reflector peers with another reflector; remove it")
      ++ optional (!isClient && (link.preference or null) != null) (
        problem "${path}.preference" "is set on a reflector: the client chooses between its reflectors; set it on the client's link and remove it here")
      ++ optional (chooses && below != null) (problem "${path}.preference" below)
    ) names
    ++ map (name: problem "${root}.links.${name}.preference" "${toString (preferenceOf name)} is also the preference of another link of this client (100 when null): it would choose between its reflectors by BIRD's tie-breakers, not by its configuration; give each link its own preference (higher wins)")
      (if chooses then checks.laterDuplicates (name: toString (preferenceOf name)) names else [ ]);

  # DN42 neighbours that cannot be a neighbour, or are one of our tunnel ends.
  dn42NeighborProblems =
    spec:
    let
      own = concatMap (link: map ip.addressOf link.ips ++ [ link.neighborAddress ]) (attrValues spec.links);
      # Their bits once, as names: each peer looks its neighbour up.
      ownBits = map ip.bitsOf own;
      ownSet = builtins.listToAttrs (map (bits: { name = bits; value = true; }) (filter (bits: bits != null) ownBits));
      isOwn = bits: if bits == null then builtins.elem null ownBits else ownSet ? ${bits};
    in
    concatMap (name:
      let
        neighbor = spec.dn42Peers.${name}.neighbor;
        kind = checks.addressKind neighbor;
      in
      optional (builtins.elem kind [ "unspecified" "multicast" "loopback" ]) (
        problem "${root}.dn42Peers.${name}.neighbor" "${neighbor} is a ${kind} address, not a neighbour's: give the peer's address for the session")
      ++ optional (kind != null && isOwn (ip.bitsOf neighbor)) (
        problem "${root}.dn42Peers.${name}.neighbor" "${neighbor} is one of this network's own tunnel addresses: give the DN42 peer's address")
      ++ optional (kind == "link-local" && spec.dn42Peers.${name}.interface == null && (spec.dn42Peers.${name}.tunnel or null) == null) (
        problem "${root}.dn42Peers.${name}.interface" "is not set: the link-local neighbor ${neighbor} is only reachable through a named interface")
    ) (attrNames spec.dn42Peers);
in
spec:
let
  links = attrValues spec.links;
in
# A reflector without clients yet still peers with DN42 (the plan warns).
optional (spec.links == { } && spec.role == "client") (problem "${root}.links" "is empty: a client needs a tunnel link to its reflector")
++ renderSpec.problems spec
++ keyFile "${root}.privateKeyFile" spec.privateKeyFile
++ setReferences spec "${root}.importSets" spec.importSets
++ setReferences spec "${root}.kernelExportSets" spec.kernelExportSets
++ concatMap (peer: setReferences spec "${root}.dn42Peers.*.exportSets" peer.exportSets) (attrValues spec.dn42Peers)
++ setNameProblems spec
++ protocolNameProblems spec
++ concatMap (name: linkProblems spec name spec.links.${name}) (attrNames spec.links)
++ map (name: problem "${root}.links" "interface \"${name}\" is used by more than one link: give each link its own interface")
  (checks.laterDuplicates toString (map (link: link.interface) links))
++ map (port: problem "${root}.links" "listen port ${toString port} is used by more than one link: give each link its own listenPort")
  (checks.laterDuplicates toString (map (link: link.listenPort) links))
++ roleProblems spec
++ reflectorChoiceProblems spec
++ misrouteProblems spec
++ dn42NeighborProblems spec
# DN42 tunnels against the iBGP links and each other.
++ (if renderSpec.problems spec == [ ] then import ./dn42-problems.nix spec else [ ])
++ map (p: problem "${root}.tuning.${p.key}" p.message) (checks.tuningRelationProblems spec.tuning)

# Host-spec rules of DN42 peers (what the option types cannot say), as
# { path; message; } for the module's assertions. Runs after the shape check:
# values are only compared here. The checkers are the plan rules' own
# (checks.nix), so `ibgp-tunnel check` and the module refuse the same.
let
  inherit (builtins) attrNames attrValues concatMap filter isAttrs;
  util = import ../base/util.nix;
  ip = import ../base/ip.nix;
  checks = import ../grammar/checks.nix;
  dn42 = import ./dn42.nix;
  inherit (util) optional;
  root = "services.ibgpTunnel";
  problem = path: message: { inherit path message; };
in
given:
let
  spec = dn42.normalize given;
  peers = spec.dn42Peers;
  isTunnel = name: isAttrs peers.${name} && isAttrs (peers.${name}.tunnel or null);
  tunnels = filter isTunnel (attrNames peers);
  at = name: key: "${root}.dn42Peers.${name}.${key}";
  linkNames = attrNames spec.links;

  clashes = checks.dn42Clashes {
    peers = map (name: {
      inherit name;
      interface = dn42.interfaceOf name peers.${name};
      explicitInterface = peers.${name}.interface != null;
      port = if isTunnel name then dn42.listenPortOf peers.${name} else null;
      tunnel = isTunnel name;
    }) (attrNames peers);
    interfaces =
      map (name: { name = spec.links.${name}.interface; owner = "the interface of ${root}.links.${name}"; }) linkNames
      ++ map (name: { inherit name; owner = "one of ${root}.uplinkInterfaces"; }) spec.uplinkInterfaces
      ++ map (name: { inherit name; owner = "one of ${root}.lanInterfaces"; }) spec.lanInterfaces;
    ports = map (name: { port = spec.links.${name}.listenPort; owner = "${root}.links.${name}.listenPort"; }) linkNames;
    peerOwner = name: "${root}.dn42Peers.${name}";
  };

  # What a tunnel's /32 peer route must not capture: our link subnets and the
  # addresses our tunnels dial.
  subnets = concatMap (
    name:
    map (cidr: { bits = ip.prefixBits cidr; text = ip.networkOf cidr; owner = "${root}.links.${name}.ips"; }) (
      filter (cidr: ip.familyOf (ip.addressOf cidr) == "ipv4") spec.links.${name}.ips
    )
  ) linkNames;
  endpoints =
    concatMap (
      name:
      let
        address = checks.endpointIpv4 peers.${name}.tunnel.endpoint;
      in
      optional (address != null) { inherit address; owner = "the endpoint of DN42 peer ${name}'s tunnel (${at name "tunnel.endpoint"})"; }
    ) tunnels
    ++ concatMap (
      name:
      let
        address = checks.endpointIpv4 spec.links.${name}.peer.endpoint;
      in
      optional (address != null) { inherit address; owner = "the endpoint ${root}.links.${name} dials (${root}.links.${name}.peer.endpoint)"; }
    ) linkNames;
in
concatMap (
  name:
  let
    t = peers.${name}.tunnel;
    capture = if t.peerIpv4 == null then null else checks.peerIpv4Problem {
      inherit (t) ipv4 peerIpv4;
      inherit subnets endpoints;
    };
  in
  optional ((t.ipv4 == null) != (t.peerIpv4 == null)) (
    problem (at name "tunnel") "sets one of ipv4 and peerIpv4: the IPv4 point-to-point pair needs both"
  )
  ++ optional (capture != null) (problem (at name "tunnel.peerIpv4") capture)
) tunnels
++ map (c: problem (at c.name (if c.key == "interface" then "interface" else "tunnel.listenPort")) c.message) clashes
# latency = "auto" pings the neighbour through the peer's own interface.
++ concatMap (
  name:
  let
    peer = peers.${name};
  in
  optional (peer.latency == "auto" && peer.tunnel == null && peer.interface == null) (
    problem (at name "latency") "\"auto\" measures the round trip through the peer's interface: set interface (or tunnel), or give a class 1-9"
  )
) (attrNames peers)
++ concatMap (
  name:
  let
    p = checks.dn42PeerNameProblem name;
  in
  optional (p != null) (problem "${root}.dn42Peers.${name}" p)
) (attrNames peers)
++ concatMap (
  name:
  concatMap (
    setName:
    let
      outside = if spec.prefixSets ? ${setName} then checks.outsideDn42 spec.prefixSets.${setName} else [ ];
    in
    optional (outside != [ ]) (problem (at name "exportSets") (checks.exportProblem setName outside))
  ) peers.${name}.exportSets
) (attrNames peers)
# A ROA file decides which DN42 routes are imported: plain http:// only when
# asked for (render refuses it too).
++ map (url: problem "${root}.dn42.roa" "${url} is plain http://, which anyone on the path can rewrite: use https://, or set allowInsecureUrls = true") (
  if isAttrs (spec.dn42.roa or null) && !(spec.dn42.roa.allowInsecureUrls or false) then dn42.insecureRoaUrls spec else [ ]
)
# RPKI over RTR: each cache once, at most as many as bird.conf names protocols for.
++ (
  let
    roa = spec.dn42.roa or null;
    caches = if isAttrs roa && builtins.isList (roa.rtrCaches or null) then roa.rtrCaches else [ ];
    keyOf = c: "${toString (c.address or "")} ${toString (c.port or "")}";
    maxCaches = (import ../grammar/dn42-symbols.nix).maxRtrCaches;
  in
  optional (builtins.length caches > maxCaches) (
    problem "${root}.dn42.roa.rtrCaches" "lists ${toString (builtins.length caches)} caches: at most ${toString maxCaches}"
  )
  ++ optional (builtins.length (util.uniqueStrings (map keyOf caches)) != builtins.length caches) (
    problem "${root}.dn42.roa.rtrCaches" "repeats a cache: list each { address, port } once"
  )
  ++ optional (isAttrs roa && builtins.elem (roa.rtrPort or null) (import ../base/defaults.nix).exporter_ports) (
    problem "${root}.dn42.roa.rtrPort" "${toString roa.rtrPort} is a monitoring exporter's port: give the local RTR cache another"
  )
)
# DN42's route collector (grammar/dn42-collector-checks.nix, the plan rules' own):
# our prefixes here are this host's announcements and link subnets.
++ (
  let
    c = spec.dn42Collector or null;
    key = k: if k == null then "${root}.dn42Collector" else "${root}.dn42Collector.${k}";
    strings = value: if builtins.isList value then filter builtins.isString value else [ ];
    own =
      concatMap (family: map (cidr: { inherit cidr; owner = "${root}.announce.${family}"; }) (strings (spec.announce.${family} or [ ]))) [ "ipv4" "ipv6" ]
      ++ concatMap (name: map (cidr: { inherit cidr; owner = "${root}.links.${name}.ips"; }) (strings (spec.links.${name}.ips or [ ]))) linkNames;
  in
  if !(isAttrs c) || c.enable or false != true then
    [ ]
  else
    map (f: problem (key f.key) f.message) ((import ../grammar/dn42-collector-checks.nix).problems {
      role = spec.role or "client";
      dn42Peers = if isAttrs peers then builtins.length (attrNames peers) else 0;
      inherit (c) neighbor sourceAddress asn;
      ownAsn = spec.asn or null;
      ownPrefixes = own;
    })
)
# Self-service DN42 peering's settings (grammar/autopeer-checks.nix, the plan rules' own).
++ (
  let
    a = spec.autopeer or null;
    checker = import ../grammar/autopeer-checks.nix;
    optionOf = builtins.listToAttrs (map (f: { name = f.key; value = f.option; }) checker.fields);
    byKey = builtins.listToAttrs (map (f: { name = f.key; value = a.${f.option} or null; }) checker.fields);
  in
  if !(isAttrs a) then
    [ ]
  else
    map (f: problem (if f.key == null then "${root}.autopeer" else "${root}.autopeer.${optionOf.${f.key}}") f.message) (checker.problems {
      a = byKey;
      role = spec.role or "client";
      prefixSets = if isAttrs (spec.prefixSets or null) then spec.prefixSets else { };
    })
)

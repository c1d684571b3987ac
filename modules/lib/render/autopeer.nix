# Self-service DN42 peering (issue 24): spec -> requests -> what the apply
# unit writes at runtime. A request is a stranger's data:
#   { asn; public_key; neighbor (their link-local); endpoint?; peer_ipv4?; mtu?; }
# Each becomes a DN42 peer of the spec: named ap<asn> (ap<asn>_<k> when
# max_per_asn > 1), mapped by the plan's own DN42 peer mapping
# (plan/dn42-peer.nix), checked by the table's grammars and the spec's rules,
# rendered by the same session and tunnel functions as a static peer. Static
# peers always win: a request colliding with one is refused, never the other
# way round.
# Names and ports do not churn: a request the apply unit applied before comes
# back with what it was given (`name`, `listen_port`: the apply unit's
# record, never a stranger's key: the request model refuses them) and keeps
# both while they are still this host's to give (the right form for its ASN
# and max_per_asn, in the port range, not taken by a static peer or an
# earlier request); only new requests (or ones whose old values no longer
# fit) are assigned, around the kept ones. Returns
#   { problems = [ { path = "peers.<i>[.<key>]"; message; } ];
#     peers = { <name> = { index; asn; interface; listenPort; ... }; };
#     bird = "<the include's text>"; wireguard = { <interface> = ...; };
#     nft = { interfaces; ports; }; }
# Only the requests without a problem are rendered.
let
  inherit (builtins) attrNames concatMap elem elemAt filter foldl' genList isAttrs isInt length listToAttrs stringLength substring;
  util = import ../base/util.nix;
  ip = import ../base/ip.nix;
  defaults = import ../base/defaults.nix;
  tokens = import ../grammar/tokens.nix;
  fields = import ../grammar/fields.nix;
  checks = import ../grammar/checks.nix;
  dn42Spec = import ../spec/dn42.nix;
  dn42 = import ./dn42.nix;
  inherit (util) optional;
  ap = defaults.autopeer;

  # Each request key: the peer field it is (its grammar, its option path);
  # the neighbor is the requester's end of the tunnel, so link-local only.
  keys = {
    asn = { kind = fields.kind "dn42Peer" "asn"; option = "asn"; required = true; };
    public_key = { kind = fields.kind "dn42Tunnel" "publicKey"; option = "tunnel.publicKey"; required = true; };
    neighbor = { kind = tokens.dn42.linkLocal; option = "neighbor"; required = true; };
    endpoint = { kind = fields.kind "dn42Tunnel" "endpoint"; option = "tunnel.endpoint"; };
    peer_ipv4 = { kind = fields.kind "dn42Tunnel" "peerIpv4"; option = "tunnel.peerIpv4"; };
    mtu = { kind = fields.kind "dn42Tunnel" "mtu"; option = "tunnel.mtu"; };
  };
  keyNames = attrNames keys;
  # What an applied request carries besides (see above): checked for shape
  # here, for fit when names and ports are given out.
  assignedKeys = [ "name" "listen_port" ];
  namePattern = "${ap.name_prefix}[0-9]{1,10}(_[0-9]{1,3})?";
  keyOfOption = listToAttrs (map (k: { name = keys.${k}.option; value = k; }) keyNames);

  problem = i: key: message: { index = i; path = "peers.${toString i}${if key == null then "" else ".${key}"}"; inherit message; };
  startsWith = prefix: s: substring 0 (stringLength prefix) s == prefix;
in
given: requests:
let
  spec = dn42Spec.normalize given;
  a = dn42Spec.autopeerOf spec;
  statics = spec.dn42Peers;
  staticNames = attrNames statics;
  staticTunnels = filter (n: statics.${n}.tunnel != null) staticNames;
  ownLinkLocal = if a == null || a.linkLocal == null then null else ip.addressOf a.linkLocal;
  list = if builtins.isList requests then requests else [ ];
  count = length list;
  # Names the spec has already: its peers, their interfaces, the host's own.
  takenNames =
    staticNames
    ++ map (n: dn42Spec.interfaceOf n statics.${n}) staticNames
    ++ map (l: spec.links.${l}.interface) (attrNames spec.links)
    ++ spec.uplinkInterfaces
    ++ spec.lanInterfaces;
  staticPeerIpv4s = concatMap (n: let t = statics.${n}.tunnel; in filter (x: x != null) [ t.ipv4 t.peerIpv4 ]) staticTunnels;
  staticKeys = map (n: statics.${n}.tunnel.publicKey) staticTunnels;

  valueOf = r: k: if isAttrs r then r.${k} or null else null;

  # 1. Shape and grammar of each request, then what it must not collide with.
  own =
    i: r:
    if a == null then
      [ (problem i null "self-service peering is not enabled on this host") ]
    else if !(isAttrs r) then
      [ (problem i null "is not a peering request: give an object with asn, public_key and neighbor") ]
    else
      map (k: problem i null "has ${tokens.show k}, which is not a field of a peering request: give only ${builtins.concatStringsSep ", " keyNames}") (filter (k: !(keys ? ${k}) && !(elem k assignedKeys)) (attrNames r))
      ++ optional (r ? name && !(builtins.isString r.name && builtins.match namePattern r.name != null)) (
        problem i "name" "is not a name this host gives a peering (${ap.name_prefix}<asn>, _<k> when an AS may have several)"
      )
      ++ optional (r ? listen_port && !(isInt r.listen_port && r.listen_port >= 1 && r.listen_port <= 65535 && checks.portProblem r.listen_port == null)) (
        problem i "listen_port" "is not a UDP port"
      )
      ++ concatMap (
        k:
        let
          v = r.${k} or null;
          p = if v == null then null else keys.${k}.kind.problem v;
        in
        optional (v == null && keys.${k}.required or false) (problem i k "is missing: a peering request needs ${k}")
        ++ optional (p != null) (problem i k p)
      ) keyNames;

  collisions =
    i: r:
    let
      asn = r.asn;
      peerIpv4 = r.peer_ipv4 or null;
    in
    optional (asn == spec.asn) (problem i "asn" "${toString asn} is this host's own AS: give the AS you peer from")
    ++ optional (builtins.any (n: statics.${n}.asn == asn) staticNames) (
      problem i "asn" "AS${toString asn} already peers with this host (set up by its operator): ask the operator to change that peering"
    )
    ++ optional (ownLinkLocal != null && ip.parseIPv6 r.neighbor == ip.parseIPv6 ownLinkLocal) (
      problem i "neighbor" "${r.neighbor} is our own link-local address on the tunnel: give yours"
    )
    ++ optional (peerIpv4 != null && a.ipv4 == null) (problem i "peer_ipv4" "this host offers no IPv4 on autopeer tunnels: leave peer_ipv4 out (IPv4 routes go over the IPv6 session)")
    ++ optional (peerIpv4 != null && a.ipv4 != null && (peerIpv4 == a.ipv4 || elem peerIpv4 staticPeerIpv4s)) (
      problem i "peer_ipv4" "${peerIpv4} is already used on this host: give your own DN42 IPv4 address"
    )
    ++ optional (elem r.public_key staticKeys) (problem i "public_key" "is the key of a peering this host's operator set up: give your own WireGuard public key");

  checked1 = genList (i: let r = elemAt list i; o = own i r; in { index = i; request = r; problems = if o == [ ] then collisions i r else o; }) count;

  nameOf = asn: k: "${ap.name_prefix}${toString asn}${if a != null && a.maxPerAsn > 1 then "_${toString k}" else ""}";
  conventional = asn: 20000 + asn - asn / 10000 * 10000;
  staticPorts = map (n: dn42Spec.listenPortOf statics.${n}) staticTunnels ++ map (l: spec.links.${l}.listenPort) (attrNames spec.links);

  # 2. Limits, names and ports: the applied requests first (they keep theirs),
  # then the new ones in their order; each accepted one counts against its
  # ASN and the total and takes its name and port.
  step =
    acc: c:
    let
      r = c.request;
      perAsn = acc.perAsn.${toString r.asn} or 0;
      inRange = p: p >= a.portMin && p <= a.portMax;
      free = p: !(acc.ports ? ${toString p}) && checks.portProblem p == null;
      wanted = conventional r.asn;
      range = genList (n: a.portMin + n) (a.portMax - a.portMin + 1);
      given = r.listen_port or null;
      port =
        if given != null && inRange given && free given then given
        else if inRange wanted && free wanted then wanted
        else util.firstOr null (filter free range);
      later = acc.accepted;
      # This ASN's names not held by an autopeer yet; a static peer's is
      # never skipped over (refused below), as before.
      names = genList (k: nameOf r.asn (k + 1)) a.maxPerAsn;
      unheld = filter (n: !(acc.names ? ${n})) names;
      name = if (r.name or null) != null && elem r.name unheld && !(elem r.name takenNames) then r.name else util.firstOr (nameOf r.asn (perAsn + 1)) unheld;
      refuse = key: message: acc // { refused = acc.refused ++ [ (problem c.index key message) ]; };
    in
    if c.problems != [ ] then
      acc // { refused = acc.refused ++ c.problems; }
    # A static peer's name (or an interface of the host): never replaced.
    else if elem name takenNames then
      refuse "asn" "AS${toString r.asn}'s peering name ${name} is taken on this host: ask the operator"
    else if perAsn >= a.maxPerAsn then
      refuse "asn" "AS${toString r.asn} has ${toString perAsn} peering${if perAsn == 1 then "" else "s"} on this host already, the most it allows (max_per_asn): update or remove ${if perAsn == 1 then "it" else "one"} instead"
    else if length later >= a.maxPeers then
      refuse null "this host has the most self-service peerings it allows (${toString a.maxPeers}): ask its operator"
    else if builtins.any (x: x.request.public_key == r.public_key) later then
      refuse "public_key" "another peering here uses this public key: give each peering its own key"
    else if (r.peer_ipv4 or null) != null && builtins.any (x: (x.request.peer_ipv4 or null) == r.peer_ipv4) later then
      refuse "peer_ipv4" "${r.peer_ipv4} is already used by another peering here: give your own DN42 IPv4 address"
    else if port == null then
      refuse null "no UDP port is free in ${toString a.portMin}-${toString a.portMax}: ask the operator"
    else
      acc
      // {
        perAsn = acc.perAsn // { ${toString r.asn} = perAsn + 1; };
        ports = acc.ports // { ${toString port} = true; };
        names = acc.names // { ${name} = true; };
        accepted = acc.accepted ++ [ (c // { inherit name port; problems = [ ]; }) ];
      };
  assigned = c: c.problems == [ ] && (c.request ? name || c.request ? listen_port);
  limited = foldl' step {
    perAsn = { };
    names = { };
    ports = listToAttrs (map (p: { name = toString p; value = true; }) staticPorts);
    accepted = [ ];
    refused = [ ];
  } (filter assigned checked1 ++ filter (c: !(assigned c)) checked1);

  # 3. As a static peer of the plan would be written, then the spec's own mapping.
  planPeer =
    c:
    let
      r = c.request;
    in
    {
      inherit (r) asn neighbor public_key;
      interface = c.name;
      listen_port = c.port;
      link_local = a.linkLocal;
      export_sets = a.exportSets;
    }
    // util.filterAttrs (_: v: v != null) {
      endpoint = r.endpoint or null;
      mtu = r.mtu or null;
      peer_ipv4 = r.peer_ipv4 or null;
      ipv4 = if (r.peer_ipv4 or null) != null then a.ipv4 else null;
    };
  specPeers = cs: listToAttrs (map (c: { inherit (c) name; value = (import ../plan/dn42-peer.nix) c.name (planPeer c); }) cs);
  withPeers = cs: given // { dn42Peers = (given.dn42Peers or { }) // specPeers cs; };

  # 4. The spec's rules over the spec with them: what names an autopeer is
  # its request's (path mapped back to the request's key).
  specFindings = (import ../spec/problems.nix) (withPeers limited.accepted);
  ruled = map (
    c:
    let
      at = "services.ibgpTunnel.dn42Peers.${c.name}";
      found = filter (p: p.path == at || startsWith "${at}." p.path) specFindings;
      keyOf = path: if path == at then null else keyOfOption.${substring (stringLength at + 1) (stringLength path) path} or null;
    in
    c // { problems = map (p: problem c.index (keyOf p.path) p.message) found; }
  ) (builtins.sort (x: y: x.index < y.index) limited.accepted);
  final = filter (c: c.problems == [ ]) ruled;

  rendered = (import ../spec/shape.nix).checked (withPeers final);
  names = map (c: c.name) final;
in
{
  # In the requests' order (by index, then path).
  problems = map (p: { inherit (p) path message; }) (
    builtins.sort (x: y: x.index < y.index || (x.index == y.index && x.path < y.path)) (limited.refused ++ concatMap (c: c.problems) ruled)
  );
  peers = listToAttrs (
    map (c: {
      inherit (c) name;
      value = let p = rendered.dn42Peers.${c.name}; in {
        inherit (c) index;
        inherit (p) asn neighbor interface;
        inherit (p.tunnel) publicKey endpoint linkLocal ipv4 peerIpv4;
        listenPort = dn42Spec.listenPortOf p;
        mtu = dn42Spec.mtuOf p;
      };
    }) final
  );
  bird = if names == [ ] then "" else (import ./bird.nix).dn42Sessions rendered names;
  wireguard = listToAttrs (map (dn42.tunnel rendered) names);
  nft = {
    interfaces = map (c: rendered.dn42Peers.${c.name}.interface) final;
    ports = map (c: c.port) final;
  };
}

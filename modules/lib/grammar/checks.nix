# Checkers shared by `problems` (a host spec, option paths) and
# `planProblems` (a whole plan, TOML paths): each takes values and says what
# is wrong, so the rule lives here once and only the path differs.
let
  inherit (builtins)
    any
    elem
    filter
    groupBy
    head
    isInt
    match
    attrValues
    stringLength
    substring
    ;
  ip = import ../base/ip.nix;
  tokens = import ./tokens.nix;
  util = import ../base/util.nix;

  hasPrefix = util.hasPrefix;

  lower = util.toLower;

  # Special ranges as bit prefixes, per family.
  special = builtins.mapAttrs (_: map (map ip.prefixBits)) {
    ipv4 = [
      [ "0.0.0.0/32" ]
      [ "127.0.0.0/8" ]
      [ "224.0.0.0/4" ]
      [ "169.254.0.0/16" ]
      [ "192.0.2.0/24" "198.51.100.0/24" "203.0.113.0/24" ]
    ];
    ipv6 = [
      [ "::/128" ]
      [ "::1/128" ]
      [ "ff00::/8" ]
      [ "fe80::/10" ]
      [ "2001:db8::/32" ]
    ];
  };
  kindNames = [ "unspecified" "loopback" "multicast" "link-local" "documentation" ];
in
rec {
  inherit lower;

  # What the core makes of a name in bird.conf (render/bird.nix: identifier),
  # compared without case.
  identifierKey = name: lower (builtins.replaceStrings [ "-" "." ] [ "_" "_" ] name);

  # The names bird.conf defines itself; a prefix set must not become one.
  generatedSetNames = [ "tunnel" ];

  # "unspecified", "loopback", "multicast", "link-local", "documentation",
  # "unicast", or null for what is not an address.
  addressKind =
    address:
    let
      bits = ip.bitsOf address;
      ranges = special.${ip.familyOf address};
      hits = filter (i: any (p: hasPrefix p bits) (builtins.elemAt ranges i)) (builtins.genList (i: i) 5);
    in
    if bits == null then null else if hits == [ ] then "unicast" else builtins.elemAt kindNames (head hits);

  asnKind =
    asn:
    if elem asn [ 0 23456 65535 4294967295 ] then
      "reserved"
    else if asn >= 4242420000 && asn <= 4242429999 then
      "dn42"
    else if (asn >= 64512 && asn <= 65534) || (asn >= 4200000000 && asn <= 4294967294) then
      "private"
    else
      "public";

  # A BIRD prefix pattern as { family; bits; length; low; high; } (null if it
  # does not parse): the core's one parser (patterns.nix).
  inherit (import ./patterns.nix) parsePattern;

  # Prefix bits whose union is every address of the family: some net holds
  # the whole prefix, or both halves are covered. Visits only halves that
  # some net lies inside, so it is linear in the nets times the depth.
  coversEverything =
    nets:
    let
      covers =
        prefix: candidates:
        let
          # hasPrefix written out: this runs for every net at every depth.
          width = stringLength prefix;
          inside = filter (n: substring 0 width n == prefix) candidates;
        in
        if any (n: substring 0 (stringLength n) prefix == n) candidates then
          true
        else if builtins.all (n: n == prefix) inside || inside == [ ] then
          false
        else
          covers "${prefix}0" inside && covers "${prefix}1" inside;
    in
    covers "" nets;

  # Whether a pattern can accept a route for `address`: its network holds it
  # and it accepts more than the default route (which every filter rejects).
  patternReaches = pattern: address: pattern.high > 0 && hasPrefix pattern.bits (ip.bitsOf address);

  # The patterns of a list that reach `address`, its bits worked out once.
  patternsReaching =
    patterns: address:
    let
      bits = ip.bitsOf address;
    in
    filter (pattern: pattern.high > 0 && hasPrefix pattern.bits bits) patterns;

  # Networks a list of patterns routes to (the default route alone is
  # rejected by every filter the core writes).
  reachNets = patterns: map (p: p.bits) (filter (p: p.high > 0) patterns);

  overlaps = a: b: hasPrefix a b || hasPrefix b a;

  # Tuning (camelCase keys) -> [ { key; message; } ]: BIRD's ranges, then how
  # the timers relate.
  tuningProblems = tuning: tuningRangeProblems tuning ++ tuningRelationProblems tuning;

  tuningRangeProblems = tuning: (tuningParts tuning).ranged;
  tuningRelationProblems = tuning: (tuningParts tuning).relations;

  tuningParts =
    tuning:
    let
      value = name: tuning.${name} or null;
      ranged =
        builtins.concatMap (
          name:
          let
            kind = tokens.tuning.${name};
          in
          let
            v = value name;
            p = if v == null then null else kind.problem v;
          in
          if p == null then [ ] else [ { key = name; message = p; } ]
        ) (builtins.attrNames (removeAttrs tokens.tuning [ "errorWaitTime" ]));
      hold = if isInt (value "holdTime") then value "holdTime" else 240;
      keepalive = value "keepaliveTime";
      wait = value "errorWaitTime";
      waitProblems =
        if wait == null then
          [ ]
        else if !(builtins.isList wait) || builtins.length wait != 2 || !(builtins.all isInt wait) then
          [ { key = "errorWaitTime"; message = "must be two whole numbers [minimum, maximum] in seconds"; } ]
        else
          let
            low = builtins.elemAt wait 0;
            high = builtins.elemAt wait 1;
          in
          map (m: { key = "errorWaitTime"; message = m; }) (
            filter (m: m != null) (map tokens.tuning.errorWaitTime.problem wait)
            ++ util.optional (low > high) "[${toString low}, ${toString high}]: the minimum is larger than the maximum; BIRD waits from the first up to the second"
          );
    in
    {
      ranged = ranged ++ waitProblems;
      relations = util.optional (isInt keepalive && keepalive <= 65535 && keepalive > hold) {
      key = "keepaliveTime";
      message =
        if hold == 0 then
          "${toString keepalive}: BIRD refuses any keepalive time with hold time 0 (no keepalives); use a hold time of 3 or more (with NixOS options alone, keepaliveTime = null also works)"
        else
          "${toString keepalive} is longer than the hold time (${toString hold}${if value "holdTime" == null then ", BIRD's default" else ""}): BIRD refuses a keepalive time above the hold time; use at most a third of it";
      };
    };

  # Elements of `list` sharing `keyOf` with an earlier one, keeping the first.
  laterDuplicates =
    keyOf: list:
    let
      groups = groupBy keyOf list;
    in
    builtins.concatMap (group: builtins.tail group) (attrValues groups);

  # A client with `count` links gives routes a reflector only had from another
  # reflector the link's rank, 0 .. count - 1 (render/reflectors.nix), so
  # every preference must be at least `count` to rank direct routes first.
  preferenceBelowRanks =
    value: count:
    if builtins.isInt value && value < count then
      "${toString value} is below ${toString count}, the number of this client's links: routes a reflector only has from another reflector get local preference 0 to ${toString (count - 1)} (by the links' order), so a direct route of this link would lose to them; use 100 or more"
    else
      null;

  # UDP ports BIRD's BFD binds whenever a bfd protocol runs (RFC 5881 single
  # hop 3784 and its echo 3785, RFC 5883 multihop 4784, which the iBGP
  # sessions use): a WireGuard interface bound there first stops BFD. (BGP's
  # 179 is TCP; a UDP port 179 takes nothing from BIRD.)
  reservedUdpPorts = {
    "3784" = "BFD's single-hop control port";
    "3785" = "BFD's echo port";
    "4784" = "BFD's multihop control port, the iBGP sessions' BFD";
  };

  # The problem of a WireGuard listen port that BIRD needs, or null.
  portProblem =
    port:
    let
      reason = reservedUdpPorts.${toString port} or null;
    in
    if isInt port && reason != null then
      "use another port: UDP ${toString port} is ${reason}, which BIRD binds; the WireGuard interface would take it and BFD would stop"
    else
      null;

  # DN42's address space: the networks of the core's own dn42 prefix set
  # (defaults.toml), whichever set a plan names dn42.
  dn42Space =
    let
      set = (import ../base/defaults.nix).prefix_sets.dn42;
      networks = family: map (text: builtins.head (match "([^{+-]*).*" text)) (set.${family} or [ ]);
      bits = family: map ip.prefixBits (networks family);
      # Only the outermost networks, for the message.
      outermost = family: filter (n: !(any (o: o != n && hasPrefix (ip.prefixBits o) (ip.prefixBits n)) (networks family))) (networks family);
    in
    {
      ipv4 = bits "ipv4";
      ipv6 = bits "ipv6";
      text = builtins.concatStringsSep ", " (util.uniqueStrings (outermost "ipv4" ++ outermost "ipv6"));
    };

  # The patterns of a prefix set (family -> [ pattern ]) whose networks lie
  # outside DN42's address space: exported to a DN42 peer, they would
  # originate someone else's prefixes into DN42.
  outsideDn42 =
    set:
    builtins.concatMap (
      family:
      filter (
        text:
        let
          p = parsePattern family text;
        in
        p != null && !(any (d: hasPrefix d p.bits) dn42Space.${family})
      ) (set.${family} or [ ])
    ) [ "ipv4" "ipv6" ];

  # The message for an export set with patterns outside DN42's space.
  exportProblem =
    setName: outside:
    "export only prefix sets inside DN42's address space (${dn42Space.text}) to a DN42 peer: prefix set \"${setName}\" holds ${builtins.concatStringsSep ", " outside}, so this host would originate someone else's prefixes into DN42";

  # A DN42 peer name whose session protocol dn42_<name> would be one of the
  # names bird.conf defines for DN42 itself (ROA tables and their protocols,
  # the community functions): BIRD refuses a symbol defined twice.
  dn42PeerNameProblem =
    name:
    let
      symbol = identifierKey "dn42_${name}";
      taken = map identifierKey (import ./dn42-symbols.nix).ownSymbols;
    in
    if elem symbol taken then
      "rename this peer: its session would be the BIRD protocol ${symbol}, a name bird.conf already gives DN42's ${
        if match "dn42_roa.*" symbol != null then "route origin validation" else "link communities"
      } (taken: ${builtins.concatStringsSep ", " taken}), and BIRD refuses a name defined twice"
    else
      null;

  # A DN42 tunnel's IPv4 pair against what its /32 peer route would capture:
  # the host's iBGP link subnets ([ { bits; owner; text; } ]) and the
  # addresses its tunnels are dialled at ([ { address; owner; } ]).
  peerIpv4Problem =
    { ipv4, peerIpv4, subnets, endpoints }:
    let
      bits = ip.bitsOf peerIpv4;
      subnet = filter (s: hasPrefix s.bits bits) subnets;
      endpoint = filter (e: ip.bitsOf e.address == bits) endpoints;
    in
    if bits == null then
      null
    else if ipv4 != null && ip.bitsOf ipv4 == bits then
      "give the peer's own IPv4 here: ${peerIpv4} is our ipv4 too, and the pair needs two addresses"
    else if subnet != [ ] then
      "give the peer's own DN42 IPv4 here: ${peerIpv4} is inside ${(head subnet).owner} (${(head subnet).text}), and the tunnel's /32 peer route would take that iBGP link's traffic into the DN42 tunnel"
    else if endpoint != [ ] then
      "give the peer's own DN42 IPv4 here: ${peerIpv4} is ${(head endpoint).owner}, and the tunnel's /32 peer route would send that tunnel's own packets into the DN42 tunnel"
    else
      null;

  # The IPv4 address of a "host:port" endpoint, or null (IPv6, DNS name).
  endpointIpv4 =
    endpoint:
    let
      m = if builtins.isString endpoint then match "([0-9.]+):[0-9]+" endpoint else null;
    in
    if m != null && ip.familyOf (head m) == "ipv4" then head m else null;

  # A host's DN42 peers against each other and the rest of the host: the
  # interface a tunnel creates (and its unit deletes when it stops) and the
  # UDP port it binds. peers: [ { name; interface; port; tunnel; } ] with the
  # defaults filled in (port null without a tunnel); interfaces and ports:
  # [ { name; owner; } ] and [ { port; owner; } ] the host uses otherwise;
  # peerOwner: a peer's name as the messages show it.
  # -> [ { peer; key = "interface" | "port"; message; } ]
  dn42Clashes =
    { peers, interfaces, ports, peerOwner }:
    let
      # Peers by interface and tunnels by port, grouped once: each peer looks
      # its value up instead of scanning every other peer (a node with 100
      # peers). The buckets are coarse (see bucket); == inside one decides.
      bucket = v: if builtins.isString v then "s${v}" else if builtins.isInt v then "i${toString v}" else "?";
      byInterface = groupBy (o: bucket o.interface) peers;
      tunnelsByPort = groupBy (o: bucket o.port) (filter (o: o.tunnel) peers);
    in
    builtins.concatMap (
      peer:
      let
        peerInterface = filter (o: o.name != peer.name && o.interface == peer.interface) (byInterface.${bucket peer.interface} or [ ]);
        hostInterface = filter (o: o.name == peer.interface) interfaces;
        samePort =
          filter (p: p.port == peer.port) ports
          ++ map (o: { inherit (o) port; owner = peerOwner o.name; }) (
            filter (o: o.name != peer.name && o.port == peer.port) (tunnelsByPort.${bucket peer.port} or [ ])
          );
        reserved = portProblem peer.port;
      in
      util.optional (peerInterface != [ ]) {
        inherit (peer) name;
        key = "interface";
        message = "give each DN42 peer an interface of its own: \"${peer.interface}\" is also ${peerOwner (head peerInterface).name}'s${
          if peer.explicitInterface then "" else " (dn42-<peer> is the default)"
        }";
      }
      ++ util.optional (peer.tunnel && peerInterface == [ ] && hostInterface != [ ]) {
        inherit (peer) name;
        key = "interface";
        message = "give the tunnel an interface of its own: \"${peer.interface}\"${
          if peer.explicitInterface then "" else " (the default dn42-<peer>)"
        } is also ${(head hostInterface).owner}, and the tunnel's unit deletes its interface when it stops";
      }
      ++ util.optional (peer.tunnel && reserved != null) {
        inherit (peer) name;
        key = "port";
        message = reserved;
      }
      ++ util.optional (peer.tunnel && reserved == null && samePort != [ ]) {
        inherit (peer) name;
        key = "port";
        message = "set a listen port of its own: UDP ${toString peer.port} is also ${(head samePort).owner}'s";
      }
    ) peers;

  # Every member of a group that shares `keyOf` with another.
  collisions =
    keyOf: list:
    builtins.concatMap (group: if builtins.length group > 1 then group else [ ]) (attrValues (groupBy keyOf list));
}

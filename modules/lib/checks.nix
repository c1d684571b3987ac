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
    ;
  ip = import ./ip.nix;
  tokens = import ./tokens.nix;
  util = import ./util.nix;

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
  # does not parse); bits are the network's first `length` bits.
  parsePattern =
    family: text:
    let
      kind = tokens.pattern family;
      m = match "([^/]+)/([0-9]+)(([+])|(-)|[{]([0-9]+),([0-9]+)[}])?" text;
      length = builtins.fromJSON (builtins.elemAt m 1);
      most = if family == "ipv4" then 32 else 128;
      at = builtins.elemAt m;
    in
    if kind.problem text != null then
      null
    else
      {
        inherit family length;
        bits = ip.prefixBits "${at 0}/${at 1}";
        low = if at 5 != null then builtins.fromJSON (at 5) else if at 4 != null then 0 else length;
        high = if at 5 != null then builtins.fromJSON (at 6) else if at 3 != null then most else length;
      };

  # Prefix bits whose union is every address of the family: some net holds
  # the whole prefix, or both halves are covered. Visits only halves that
  # some net lies inside, so it is linear in the nets times the depth.
  coversEverything =
    nets:
    let
      covers =
        prefix: candidates:
        let
          inside = filter (n: hasPrefix prefix n) candidates;
        in
        if any (n: hasPrefix n prefix) candidates then
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

  # Every member of a group that shares `keyOf` with another.
  collisions =
    keyOf: list:
    builtins.concatMap (group: if builtins.length group > 1 then group else [ ]) (attrValues (groupBy keyOf list));
}

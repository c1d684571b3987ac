# One grammar per kind of token the core writes into bird.conf, the nft
# rules, the WireGuard settings (a bash unit script run as root on NixOS) and
# sops secret names. Each kind has
#   regex       for builtins.match / types.strMatching (whole-string match)
#   problem     value -> null, or what is wrong and how to fix it
#   emit        field: value: value, or a throw naming the field and the fix
# The regexes admit no quote, brace, semicolon, space, newline, '%', '$' or
# non-ASCII byte, so whatever path a value came by (plan, options, a
# hand-made spec) it cannot change the structure of what is rendered.
let
  inherit (builtins)
    elemAt
    fromJSON
    isInt
    isString
    match
    replaceStrings
    stringLength
    substring
    toJSON
    ;
  ip = import ../base/ip.nix;

  # std::regex recurses per character; very long input must never reach it.
  maxLength = 512;

  whole = re: "(${re})";

  # What the user wrote, quoted and escaped on one line (newlines stay visible).
  show =
    value:
    let
      text = if isString value then toJSON value else if isInt value then toString value else "a ${builtins.typeOf value}";
    in
    if stringLength text <= 80 then
      text
    # Cutting bytes could split a UTF-8 character: cut ASCII only.
    else if match "[ -~]*" text != null then
      "${substring 0 77 text}...\""
    else
      "a string of ${toString (stringLength value)} bytes";

  octet = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
  ipv4Re = "${octet}(\\.${octet}){3}";
  h = "[0-9A-Fa-f]{1,4}";
  ipv6Re = whole (
    builtins.concatStringsSep "|" [
      "(${h}:){7}${h}"
      "(${h}:){1,7}:"
      "(${h}:){1,6}:${h}"
      "(${h}:){1,5}(:${h}){1,2}"
      "(${h}:){1,4}(:${h}){1,3}"
      "(${h}:){1,3}(:${h}){1,4}"
      "(${h}:){1,2}(:${h}){1,5}"
      "${h}:(:${h}){1,6}"
      ":((:${h}){1,7}|:)"
    ]
  );

  # ipv6Re's language, tested in parts. std::regex (POSIX, longest match)
  # follows each of its nine alternatives to the end: ~8 us an address, the
  # core's costliest token. Here: one "::" with at most seven groups around
  # it, or eight groups without one. test_tokens.py holds it to the regex.
  hexGroups = "[0-9A-Fa-f]{1,4}(:[0-9A-Fa-f]{1,4})*";
  groupCount = text: if text == "" then 0 else 1 + stringLength text - stringLength (replaceStrings [ ":" ] [ "" ] text);
  isIPv6 =
    text:
    let
      halves = match "([0-9A-Fa-f:]*)::([0-9A-Fa-f:]*)" text;
      head = elemAt halves 0;
      tail = elemAt halves 1;
      groups = half: half == "" || match hexGroups half != null;
    in
    if halves == null then
      match hexGroups text != null && groupCount text == 8
    else
      groups head && groups tail && groupCount head + groupCount tail <= 7;

  # "${ipv6Re}${suffix}" for a suffix starting with "/" (which no address
  # holds, so the first "/" splits the two).
  isIPv6With =
    suffix: text:
    let
      m = match "([^/]*)(/.*)" text;
    in
    m != null && isIPv6 (elemAt m 0) && match suffix (elemAt m 1) != null;

  # "${v4}|${v6}": every IPv6 form holds a ':', no IPv4 one does.
  eitherFamily = v4: v6: text: if match "[^:]*" text != null then match v4 text != null else v6 text;

  len4 = "(3[0-2]|[12]?[0-9])";
  len6 = "(12[0-8]|1[01][0-9]|[1-9]?[0-9])";
  cidr4Re = "${ipv4Re}/${len4}";
  cidr6Re = "${ipv6Re}/${len6}";
  # BIRD's prefix pattern operators: net+, net-, net{low,high}.
  operatorRe = "([+]|-|[{][0-9]{1,3},[0-9]{1,3}[}])?";
  label = "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
  hostnameRe = "${label}(\\.${label})*\\.?";
  portRe = "[1-9][0-9]{0,4}";

  # test: value -> whether it is in regex's language, where a cheaper way
  # than matching the regex itself exists (the IPv6 forms).
  kind =
    {
      regex,
      expect,
      extra ? (_: null),
      test ? (value: match regex value != null),
    }:
    rec {
      inherit regex expect test;
      problem =
        value:
        if !(isString value && stringLength value <= maxLength && test value) then
          "${show value} is not ${expect}"
        else
          extra value;
      emit =
        field: value:
        let
          p = problem value;
        in
        if p == null then value else throw "ibgp-tunnel: ${field}: ${p}";
    };

  intKind =
    {
      low,
      high,
      expect,
      extra ? (_: null),
    }:
    rec {
      inherit low high expect;
      problem =
        value:
        if !(isInt value) then
          "${show value} is not ${expect}: give a whole number from ${toString low} to ${toString high}"
        else if value < low || value > high then
          "${toString value} is out of range: ${expect} is ${toString low} to ${toString high}"
        else
          extra value;
      emit =
        field: value:
        let
          p = problem value;
        in
        if p == null then value else throw "ibgp-tunnel: ${field}: ${p}";
    };

  orWords = import ./or-words.nix show;

  enumKind = values: rec {
    inherit values;
    problem = value: if builtins.elem value values then null else "${show value} is not one of ${builtins.concatStringsSep ", " values}";
    emit = field: value: let p = problem value; in if p == null then value else throw "ibgp-tunnel: ${field}: ${p}";
  };

  # Compared as bits (cheap); the network is only worked out for the message.
  # The kind's regex passed first, so the address parses: splitCidr, not
  # parseCidr, which would parse it once more for its family.
  hostBits =
    family: value:
    let
      c = ip.splitCidr value;
      rest = substring c.length 128 (ip.bitsOf c.address);
    in
    if match "0*" rest == null then "${show value} has host bits set: write the network, ${ip.networkOf value}" else null;

  patternRange =
    family: value:
    let
      m = match "([^/]+)/([0-9]+)([{]([0-9]+),([0-9]+)[}])?.*" value;
      length = fromJSON (elemAt m 1);
      low = fromJSON (elemAt m 3);
      high = fromJSON (elemAt m 4);
      most = if family == "ipv4" then 32 else 128;
    in
    if elemAt m 2 != null && !(length <= low && low <= high && high <= most) then
      "${show value}: the range {${toString low},${toString high}} must satisfy ${toString length} <= low <= high <= ${toString most} (the prefix length, then the family's maximum)"
    else
      null;

  # A name of digits and dots only (999.1.1.1) is a mistyped address, not DNS.
  numericName = host: match "[0-9.]+" host != null && match ipv4Re host == null;

  firstNonNull = list: if list == [ ] then null else if builtins.head list != null then builtins.head list else firstNonNull (builtins.tail list);

  prefixOf = family: re: test: kind {
    regex = re;
    inherit test;
    expect = "an ${if family == "ipv4" then "IPv4" else "IPv6"} prefix such as ${if family == "ipv4" then "10.0.0.0/8" else "fd00::/8"} (ASCII digits, no zone id, no spaces)";
    extra = hostBits family;
  };

  patternOf = family: re: test: kind {
    regex = "${re}${operatorRe}";
    inherit test;
    expect = "a BIRD ${if family == "ipv4" then "IPv4" else "IPv6"} prefix pattern such as ${if family == "ipv4" then "172.20.0.0/14{21,29}" else "fd00::/8{44,64}"}: a prefix, then optionally +, - or {low,high}, without spaces";
    extra = value: firstNonNull [ (hostBits family (builtins.head (match "([^+{-]+).*" value))) (patternRange family value) ];
  };
in
rec {
  inherit show maxLength;
  # For fields.nix's inline ranges and enums.
  inherit intKind enumKind orWords;

  # DN42 peering: link-local addresses, tunnel MTU, (64511, x) communities,
  # the ROA URL and refresh interval.
  dn42 = import ./dn42-tokens.nix { inherit kind intKind show ipv6Re; };

  # Hosts, links, DN42 peers and prefix sets: BIRD symbols (ibgp_<name>,
  # <NAME>_NET_v4, at most 64 characters), file names and sops key names.
  name = kind {
    regex = "[A-Za-z][A-Za-z0-9_-]{0,56}";
    expect = "a usable name: start with a letter, then letters, digits, '_' or '-', at most 57 characters (it becomes a BIRD name, a file name and a sops key)";
  };

  # Linux IFNAMSIZ - 1, and never "." or "..".
  interface = kind {
    regex = "[A-Za-z0-9_-][A-Za-z0-9_.-]{0,14}|\\.[A-Za-z0-9_-][A-Za-z0-9_.-]{0,13}|\\.\\.[A-Za-z0-9_.-]{1,13}";
    expect = "a usable interface name: 1 to 15 letters, digits, '-', '_' or '.', not \".\" or \"..\"";
  };

  ipv4 = kind {
    regex = ipv4Re;
    expect = "an IPv4 address such as 172.20.42.1 (dotted quad, no leading zeros)";
  };

  ipv6 = kind {
    regex = ipv6Re;
    test = isIPv6;
    expect = "an IPv6 address such as fd00::1 (hex groups only: no zone id '%...', no embedded IPv4)";
  };

  address = kind {
    regex = "${ipv4Re}|${ipv6Re}";
    test = eitherFamily ipv4Re isIPv6;
    expect = "an IPv4 or IPv6 address such as 172.20.42.1 or fd00::1 (no zone id '%...')";
  };

  # An interface address with its prefix length: host bits are the point.
  cidr = kind {
    regex = "${cidr4Re}|${cidr6Re}";
    test = eitherFamily cidr4Re (isIPv6With "/${len6}");
    expect = "an address with prefix length such as 10.255.255.1/30 or fd00::1/64";
  };

  prefix4 = prefixOf "ipv4" cidr4Re (value: match cidr4Re value != null);
  prefix6 = prefixOf "ipv6" cidr6Re (isIPv6With "/${len6}");
  prefix = family: if family == "ipv4" then prefix4 else prefix6;

  pattern4 = patternOf "ipv4" cidr4Re (value: match "${cidr4Re}${operatorRe}" value != null);
  pattern6 = patternOf "ipv6" cidr6Re (isIPv6With "/${len6}${operatorRe}");
  pattern = family: if family == "ipv4" then pattern4 else pattern6;

  # A prefix of either family: a destination opened to DN42 (dn42Inbound).
  prefixAny = kind {
    regex = "${cidr4Re}|${cidr6Re}";
    test = eitherFamily cidr4Re (isIPv6With "/${len6}");
    expect = "an IPv4 or IPv6 prefix such as 172.22.0.53/32 or fd42:1::/64 (ASCII digits, no zone id, no spaces)";
    extra = hostBits null;
  };
  # What nft matches an opened destination's port with.
  inboundProto = enumKind [ "tcp" "udp" ];
  inboundPort = intKind {
    low = 1;
    high = 65535;
    expect = "a TCP or UDP port";
  };

  # The regexes alone, for types.strMatching.
  prefixRegex = "${cidr4Re}|${cidr6Re}";
  patternRegex = "${cidr4Re}${operatorRe}|${cidr6Re}${operatorRe}";

  routerId = kind {
    regex = ipv4Re;
    expect = "a router id: an IPv4 dotted quad such as 172.23.101.1";
    extra = value: if value == "0.0.0.0" then "0.0.0.0 is not a usable router id: use one of the host's IPv4 addresses" else null;
  };

  asn = intKind {
    low = 1;
    high = 4294967295;
    expect = "an AS number (32-bit)";
  };

  port = intKind {
    low = 1;
    high = 65535;
    expect = "a UDP port";
  };

  # WireGuard's persistent keepalive is a u16 of seconds.
  keepalive = intKind {
    low = 1;
    high = 65535;
    expect = "a keepalive interval in seconds";
  };

  # host:port with an RFC 1123 name, an IPv4 address or [IPv6]; NixOS's
  # WireGuard unit passes it to `wg set` in a bash script run as root.
  endpoint = kind {
    regex = "(${hostnameRe}|${ipv4Re}|[[]${ipv6Re}[]]):${portRe}";
    expect = "an endpoint \"host:port\" (a DNS name, an IPv4 address or [IPv6], then the port), such as 203.0.113.10:51821";
    extra =
      value:
      let
        m = match "(.*):([0-9]+)" value;
        port' = fromJSON (elemAt m 1);
      in
      if stringLength (elemAt m 0) > 253 then
        "${show value}: the host name is longer than 253 characters"
      else if numericName (elemAt m 0) then
        "${show value}: ${elemAt m 0} looks like an IPv4 address but is not one"
      else if port' > 65535 then
        "${show value}: port ${toString port'} is out of range 1-65535"
      else
        null;
  };

  # A reflector's address as the plan gives it: no port, no brackets.
  endpointHost = kind {
    regex = "${hostnameRe}|${ipv4Re}|${ipv6Re}";
    expect = "an IP address or DNS name alone, such as 203.0.113.10 (the port comes from each link's port)";
    extra =
      value:
      if stringLength value > 253 then
        "${show value}: a DNS name has at most 253 characters"
      else if numericName value then
        "${show value} looks like an IPv4 address but is not one"
      else
        null;
  };

  publicKey = kind {
    regex = "[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=";
    expect = "a WireGuard public key (44 characters of base64 encoding 32 bytes, as `wg pubkey` prints); run `ibgp-tunnel keys`";
  };

  # A runtime file (sops-nix secret): read by a root script, so nothing a
  # shell would interpret, and never the world-readable store.
  runtimePath = kind {
    regex = "(/[A-Za-z0-9_@+=,:.-]+)+";
    expect = "an absolute runtime path such as /run/secrets/wg_ibgp/private_key (letters, digits and _@+=,:.- between slashes; no spaces, quotes or shell characters)";
    extra =
      value:
      if match "/nix/store(/.*)?" value != null then
        "${show value} is in the Nix store, which every user can read: use a runtime path such as a sops-nix secret"
      else if match "(.*/)?\\.\\.?(/.*)?" value != null then
        "${show value} has a '.' or '..' component: write the path plainly"
      else
        null;
  };

  role = enumKind [ "reflector" "client" ];

  # Two reflectors (issue #13): a reflector's cluster id (RFC 4456), written
  # like a router id, and a client's preference for the routes one link brings
  # (BGP LOCAL_PREF, a u32; BIRD's default is 100).
  clusterId = kind {
    regex = ipv4Re;
    expect = "a cluster id: an IPv4 dotted quad such as 172.23.101.1";
    extra = value: if value == "0.0.0.0" then "0.0.0.0 is not a usable cluster id: leave cluster_id out (the reflector's router id is used) or give another dotted quad" else null;
  };
  localPref = intKind {
    low = 0;
    high = 4294967295;
    expect = "a BGP local preference (higher wins; BIRD's default is 100)";
  };
  importLimitAction = enumKind [ "warn" "block" "restart" "disable" ];

  # BIRD's own limits (proto/bgp/config.Y, proto/bfd, conf/cf-lex.l at v2.0.12
  # and v3.1.0): every number is parsed as 32-bit; the rest as noted.
  tuning = {
    # Microseconds in a u32 (expr_us), so at most 4294967 ms.
    bfdIntervalMs = intKind { low = 1; high = 4294967; expect = "the BFD interval in ms"; };
    # A u8 in every BFD packet.
    bfdMultiplier = intKind { low = 1; high = 255; expect = "the BFD multiplier"; };
    # 12 bits in the graceful restart capability (BIRD 3 refuses >= 4096).
    gracefulRestartTime = intKind { low = 1; high = 4095; expect = "the graceful restart time in seconds"; };
    gracefulRestartWait = intKind { low = 1; high = 65535; expect = "the graceful restart wait in seconds"; };
    # 24 bits in the long-lived graceful restart capability.
    longLivedStaleTime = intKind { low = 0; high = 16777215; expect = "the long-lived stale time in seconds"; };
    connectDelayTime = intKind { low = 0; high = 65535; expect = "the connect delay time in seconds"; };
    connectRetryTime = intKind { low = 1; high = 65535; expect = "the connect retry time in seconds"; };
    # BIRD doubles the wait from min to max; 0 would retry in a tight loop.
    errorWaitTime = intKind { low = 1; high = 65535; expect = "an error wait time in seconds"; };
    # "Hold time must be in range 3-65535 or zero".
    holdTime = intKind {
      low = 0;
      high = 65535;
      expect = "the BGP hold time in seconds (0, or 3 to 65535)";
      extra = value: if value == 1 || value == 2 then "${toString value} is not a BIRD hold time: use 0 (no keepalives) or 3 to 65535" else null;
    };
    keepaliveTime = intKind { low = 1; high = 65535; expect = "the BGP keepalive time in seconds"; };
    importLimit = intKind { low = 1; high = 4294967295; expect = "an import limit (a 32-bit count of routes)"; };
  };
}

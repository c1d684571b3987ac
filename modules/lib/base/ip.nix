# IPv4/IPv6 address arithmetic on builtins only: enough to say whether an
# address lies in a subnet, which family it is and whether it is link-local.
let
  inherit (builtins)
    all
    elemAt
    filter
    genList
    length
    match
    split
    stringLength
    ;
  util = import ./util.nix;

  hexDigits = {
    "0" = 0; "1" = 1; "2" = 2; "3" = 3; "4" = 4; "5" = 5; "6" = 6; "7" = 7;
    "8" = 8; "9" = 9; "a" = 10; "b" = 11; "c" = 12; "d" = 13; "e" = 14; "f" = 15;
    "A" = 10; "B" = 11; "C" = 12; "D" = 13; "E" = 14; "F" = 15;
  };

  # Every two-digit hex string (either case) -> its value, built once: a
  # hextet is then two lookups instead of a fold over its characters.
  hexPairs = builtins.listToAttrs (
    builtins.concatMap (hi: map (lo: { name = hi + lo; value = hexDigits.${hi} * 16 + hexDigits.${lo}; }) (builtins.attrNames hexDigits)) (
      builtins.attrNames hexDigits
    )
  );

  # One to four hex digits (validHextets checked them) -> the value.
  parseHex =
    text:
    let
      padded = builtins.substring (stringLength text) 4 "0000" + text;
    in
    hexPairs.${builtins.substring 0 2 padded} * 256 + hexPairs.${builtins.substring 2 2 padded};

  octetFields = text: match "([0-9]{1,3})\\.([0-9]{1,3})\\.([0-9]{1,3})\\.([0-9]{1,3})" text;

  # "0".."255" -> the value, and -> eight binary digits; built once, so the
  # usual address is four lookups, no function call per octet.
  octetValue = builtins.listToAttrs (genList (n: { name = toString n; value = n; }) 256);
  octetBits = builtins.listToAttrs (genList (n: { name = toString n; value = elemAt byteBits n; }) 256);

  # Whether all four fields are plain octets (no leading zero, at most 255).
  plainOctets =
    fields: octetValue ? ${elemAt fields 0} && octetValue ? ${elemAt fields 1} && octetValue ? ${elemAt fields 2} && octetValue ? ${elemAt fields 3};

  # Anything else: fromJSON as before (a leading zero is an error there,
  # more than 255 is no address).
  slowIPv4 =
    fields:
    let
      octets = map builtins.fromJSON fields;
    in
    if all (o: o <= 255) octets then octets else null;

  parseIPv4 =
    text:
    let
      fields = octetFields text;
    in
    if fields == null then
      null
    else if plainOctets fields then
      [ octetValue.${elemAt fields 0} octetValue.${elemAt fields 1} octetValue.${elemAt fields 2} octetValue.${elemAt fields 3} ]
    else
      slowIPv4 fields;

  # An IPv4 address as 32 binary digits, or null if it is none.
  bitsOf4 =
    text:
    let
      fields = octetFields text;
      octets = if fields == null then null else slowIPv4 fields;
    in
    if fields == null then
      null
    else if plainOctets fields then
      octetBits.${elemAt fields 0} + octetBits.${elemAt fields 1} + octetBits.${elemAt fields 2} + octetBits.${elemAt fields 3}
    else if octets == null then
      null
    else
      builtins.concatStringsSep "" (map (elemAt byteBits) octets);

  # Every IPv6 form holds a ':', no IPv4 one does: one cheap match picks the
  # parser, so an IPv6 address never pays for the IPv4 regex first.
  hasColon = text: match "[^:]*" text == null;

  groupsOf = text: if text == "" then [ ] else filter builtins.isString (split ":" text);

  validHextets = text: text == "" || match "[0-9a-fA-F]{1,4}(:[0-9a-fA-F]{1,4})*" text != null;

  # The "::" fill: zeroRuns[n] is n zero groups, built once.
  zeroRuns = genList (n: genList (_: "0") n) 9;

  # An IPv6 address's eight groups as written (1 to 4 hex digits each, "0"
  # where "::" stands), or null. No embedded IPv4 or zone ids: tunnel
  # addresses never need them. Parsed and bits (below) both start here.
  groupsOf6 =
    text:
    let
      halves = filter builtins.isString (split "::" text);
      head = elemAt halves 0;
      tail = if length halves == 2 then elemAt halves 1 else "";
      headGroups = groupsOf head;
      tailGroups = groupsOf tail;
      gap = 8 - length headGroups - length tailGroups;
    in
    if match "[0-9a-fA-F:]+" text == null || length halves > 2 || !(validHextets head && validHextets tail) then
      null
    else if length halves == 1 then
      (if length headGroups == 8 then headGroups else null)
    else if gap < 1 then
      null
    else
      headGroups ++ elemAt zeroRuns gap ++ tailGroups;

  # Eight 16-bit integers, or null.
  parseIPv6 = text: let groups = groupsOf6 text; in if groups == null then null else map parseHex groups;

  # Two hex digits (either case) -> eight binary digits, built once: a group's
  # bits are two lookups, no number in between.
  pairBits = builtins.mapAttrs (_: elemAt byteBits) hexPairs;
  groupBits =
    group:
    let
      padded = builtins.substring (stringLength group) 4 "0000" + group;
    in
    pairBits.${builtins.substring 0 2 padded} + pairBits.${builtins.substring 2 2 padded};

  # Compare the first `len` bits of two equal-length lists of `width`-bit words.
  samePrefix =
    width: len: a: b:
    let
      whole = len / width;
      rest = len - whole * width;
      scale = util.pow2 (width - rest);
    in
    all (i: elemAt a i == elemAt b i) (genList (i: i) whole)
    && (rest == 0 || (elemAt a whole) / scale == (elemAt b whole) / scale);

  splitCidr =
    cidr:
    let
      m = match "([^/]+)/([0-9]{1,3})" cidr;
    in
    if m == null then
      null
    else
      {
        address = elemAt m 0;
        length = builtins.fromJSON (elemAt m 1);
      };
  hexChars = [ "0" "1" "2" "3" "4" "5" "6" "7" "8" "9" "a" "b" "c" "d" "e" "f" ];

  # Lowercase hex without leading zeros; every value below 256 and every
  # byte as two digits are built once, so a hextet is two lookups (the
  # recursion alone took more calls for larger groups).
  hexDigitsOf = n: if n < 16 then elemAt hexChars n else hexDigitsOf (n / 16) + elemAt hexChars (n - (n / 16) * 16);
  shortHex = genList hexDigitsOf 256;
  byteHex = genList (n: elemAt hexChars (n / 16) + elemAt hexChars (n - (n / 16) * 16)) 256;
  toHex = n: if n < 256 then elemAt shortHex n else if n < 65536 then elemAt shortHex (n / 256) + elemAt byteHex (n - (n / 256) * 256) else hexDigitsOf n;

  # Zero the bits after `len` in a list of `width`-bit words.
  maskWords =
    width: len: words:
    genList (
      i:
      let
        keep = len - i * width;
        word = elemAt words i;
        scale = util.pow2 (width - keep);
      in
      if keep >= width then
        word
      else if keep <= 0 then
        0
      else
        (word / scale) * scale
    ) (length words);
  # Every byte as eight binary digits, built once.
  byteBits = genList (byte: builtins.concatStringsSep "" (genList (i: toString (builtins.bitAnd (byte / util.pow2 (7 - i)) 1)) 8)) 256;

in
rec {
  inherit parseIPv4 parseIPv6 splitCidr;

  # An address as a string of 32 or 128 "0"/"1" characters, or null: prefix
  # containment is then plain string-prefix tests.
  bitsOf =
    text:
    let
      groups = groupsOf6 text;
    in
    if !(hasColon text) then
      bitsOf4 text
    else if groups != null then
      builtins.concatStringsSep "" (map groupBits groups)
    else
      null;

  # "10.0.0.0/8" -> the first 8 bits of 10.0.0.0; null if not a CIDR.
  prefixBits =
    cidr:
    let
      c = parseCidr cidr;
    in
    if c == null then null else builtins.substring 0 c.length (bitsOf c.address);

  # "10.255.255.1/30" -> "10.255.255.0/30"; IPv6 comes out uncompressed
  # ("fdb7:1dec:4d21:ff:0:0:0:0/64"), which BIRD and nft read as well.
  networkOf =
    cidr:
    let
      c = parseCidr cidr;
      words = if c.family == "ipv4" then maskWords 8 c.length (parseIPv4 c.address) else maskWords 16 c.length (parseIPv6 c.address);
      text = if c.family == "ipv4" then builtins.concatStringsSep "." (map toString words) else builtins.concatStringsSep ":" (map toHex words);
    in
    "${text}/${toString c.length}";

  isIPv4 = text: parseIPv4 text != null;
  isIPv6 = text: parseIPv6 text != null;

  familyOf =
    text:
    if !(hasColon text) then
      (if isIPv4 text then "ipv4" else null)
    else if isIPv6 text then
      "ipv6"
    else
      null;

  # "10.255.255.1/30" -> { address = "10.255.255.1"; length = 30; family = "ipv4"; } or null.
  parseCidr =
    cidr:
    let
      c = splitCidr cidr;
      family = if c == null then null else familyOf c.address;
      maxLength = if family == "ipv4" then 32 else 128;
    in
    if family == null || c.length > maxLength then null else c // { inherit family; };

  addressOf = cidr: (splitCidr cidr).address;

  inSubnet =
    cidr: address:
    let
      c = parseCidr cidr;
    in
    if c == null || familyOf address != c.family then
      false
    else if c.family == "ipv4" then
      samePrefix 8 c.length (parseIPv4 c.address) (parseIPv4 address)
    else
      samePrefix 16 c.length (parseIPv6 c.address) (parseIPv6 address);

  # fe80::/10: BIRD's direct protocol does not learn these, so an IPv6
  # next hop on one is useless (seed pitfall 4).
  isLinkLocal6 = address: let w = parseIPv6 address; in w != null && (builtins.bitAnd (elemAt w 0) 65472) == 65152;

  # Host-part checks for a /30: the first and last address are not usable.
  isNetworkOrBroadcast4 =
    cidr: address:
    let
      c = parseCidr cidr;
      last = elemAt (parseIPv4 address) 3;
      size = util.pow2 (32 - c.length);
      offset = last - (last / size) * size;
    in
    c.length < 31 && (offset == 0 || offset == size - 1);

  # "[2001:db8::1]:51821" for IPv6, "203.0.113.10:51821" for IPv4 and names.
  endpointString = host: port: if isIPv6 host then "[${host}]:${toString port}" else "${host}:${toString port}";

}

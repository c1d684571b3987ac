# BIRD prefix patterns ("a/n", "a/n+", "a/n-", "a/n{lo,hi}") and BIRD's rule
# for matching a prefix against one: the one matcher of the core, used by the
# checkers and the route model (spec/routes.nix). Builtins only.
let
  inherit (builtins)
    elemAt
    fromJSON
    match
    stringLength
    substring
    ;
  ip = import ../base/ip.nix;
  tokens = import ./tokens.nix;
in
rec {
  # "a/n", "a/n+" (n to the family's length), "a/n-" (0 to n), "a/n{lo,hi}"
  # -> { family; length; bits; low; high; }, bits being the network's first
  # `length` bits; null when the text is no pattern of that family.
  parsePattern =
    family: text:
    let
      m = match "([^/]+)/([0-9]+)(([+])|(-)|[{]([0-9]+),([0-9]+)[}])?" text;
      at = elemAt m;
      length = fromJSON (at 1);
      most = if family == "ipv4" then 32 else 128;
    in
    if (tokens.pattern family).problem text != null then
      null
    else
      {
        inherit family length;
        bits = ip.prefixBits "${at 0}/${at 1}";
        low = if at 5 != null then fromJSON (at 5) else if at 4 != null then 0 else length;
        high = if at 5 != null then fromJSON (at 6) else if at 3 != null then most else length;
      };

  # BIRD: p/l matches a/n{lo,hi} when lo <= l <= hi and the first min(n, l)
  # bits of p and a agree. A pattern of the other family never matches.
  matches =
    pattern: prefix:
    let
      family = ip.familyOf (ip.addressOf prefix);
      p = parsePattern family pattern;
      bits = ip.prefixBits prefix;
      l = stringLength bits;
      common = if l < p.length then l else p.length;
    in
    p != null && l >= p.low && l <= p.high && substring 0 common bits == substring 0 common p.bits;

  matchesAny = patterns: prefix: builtins.any (pattern: matches pattern prefix) patterns;

}

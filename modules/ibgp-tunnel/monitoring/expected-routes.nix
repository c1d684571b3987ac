# plan (builtins.fromTOML) -> host name -> { ipv4; ipv6; }: how many routes
# BIRD installs in that host's kernel at least, from what the plan itself
# announces (the reflector's static routes and every client's announcements,
# as reflected), kept by the host's import and kernel-export sets. DN42 routes
# come on top: the plan cannot know them. Builtins only.
let
  inherit (builtins) attrValues concatMap filter length match;
  ip = (import ../../lib).ip;
  defaults = (import ../../lib).defaults;
  planLinks = (import ../../lib).planLinks;

  # A BIRD prefix pattern ("a/n", "a/n+", "a/n-", "a/n{lo,hi}") -> matcher.
  parsePattern =
    pattern:
    let
      m = match "([^/]+)/([0-9]+)([+]|-|[{]([0-9]+),([0-9]+)[}])?" pattern;
      address = builtins.elemAt m 0;
      length = builtins.fromJSON (builtins.elemAt m 1);
      suffix = builtins.elemAt m 2;
      maxLength = if ip.familyOf address == "ipv4" then 32 else 128;
      range =
        if suffix == null then
          [ length length ]
        else if suffix == "+" then
          [ length maxLength ]
        else if suffix == "-" then
          [ 0 length ]
        else
          [ (builtins.fromJSON (builtins.elemAt m 3)) (builtins.fromJSON (builtins.elemAt m 4)) ];
    in
    if m == null then null else { inherit address length range; };

  # BIRD: p/l matches a/n{lo,hi} when lo <= l <= hi and the first min(n, l)
  # bits of p and a agree.
  matches =
    pattern: prefix:
    let
      p = parsePattern pattern;
      c = ip.splitCidr prefix;
      common = if c.length < p.length then c.length else p.length;
    in
    p != null
    && ip.familyOf c.address == ip.familyOf p.address
    && c.length >= builtins.elemAt p.range 0
    && c.length <= builtins.elemAt p.range 1
    && ip.inSubnet "${p.address}/${toString common}" c.address;

  setPatterns =
    plan: family: names:
    let
      sets = defaults.prefix_sets // (plan.prefix_sets or { });
    in
    concatMap (name: (sets.${name} or { }).${family} or [ ]) names;

  keptBy = patterns: prefix: builtins.any (pattern: matches pattern prefix) patterns;

  # Linear, and sorted: names as attribute names.
  uniqueStrings = list: builtins.attrNames (builtins.listToAttrs (map (name: { inherit name; value = null; }) list));

  announced = plan: name: family: ((plan.hosts.${name} or { }).announce or { }).${family} or [ ];
in
plan: name:
let
  host = plan.hosts.${name};
  links = attrValues (plan.links or { });
  isReflector = host.role == "reflector";
  # What a reflector sends its clients of the plan's own prefixes: its own
  # and its twins' statics and clients' announcements.
  reflected =
    reflector: family:
    concatMap (r: (planLinks.reflectedBy plan r).${family}) ([ reflector ] ++ planLinks.twinsOf plan reflector);
  # What BIRD learns over iBGP: a reflector takes each client's and each
  # twin's; a client gets what its reflectors reflect, never its own
  # announcements back, filtered by its import sets. A host's own statics
  # win over any copy (and are not installed in its kernel).
  learned =
    family:
    let
      own = announced plan name family;
      notOwn = filter (prefix: !(builtins.elem prefix own));
    in
    if isReflector then
      notOwn (reflected name family)
    else
      let
        reflectors = map (link: link.reflector) (filter (link: link.client == name) links);
      in
      filter (keptBy (setPatterns plan family (host.import_sets or [ ]))) (notOwn (concatMap (r: reflected r family) reflectors));
  count =
    family:
    length (
      uniqueStrings (filter (keptBy (setPatterns plan family (host.kernel_export_sets or [ ]))) (learned family))
    );
in
{
  ipv4 = count "ipv4";
  ipv6 = count "ipv6";
}

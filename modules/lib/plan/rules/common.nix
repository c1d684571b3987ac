# Shared by the plan rules (./*.nix): TOML paths, findings, the helpers every
# rule uses, and the per-link facts parsed once (plan._links).
let
  inherit (builtins)
    attrNames
    concatMap
    concatStringsSep
    elemAt
    genList
    isString
    length
    listToAttrs
    match
    toJSON
    ;
  util = import ../../base/util.nix;
  ip = import ../../base/ip.nix;
  t = import ../../grammar/tokens.nix;
  checks = import ../../grammar/checks.nix;
  defaults = import ../../base/defaults.nix;
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
            bits = if subnet == null then null else builtins.substring 0 subnet.length (ip.bitsOf subnet.address);
          };
      }) families
    );

  # Each link end's address as bits (ip.bitsOf), parsed once for every rule
  # that asks; lazy, so an end no rule reads (or that is no string) is
  # never parsed here.
  endBits = link: builtins.mapAttrs (_: ip.bitsOf) (builtins.intersectAttrs endKeys link);
  endKeys = {
    reflector_ipv4 = null;
    client_ipv4 = null;
    reflector_ipv6 = null;
    client_ipv6 = null;
  };

  withFacts =
    plan:
    plan
    // {
      _links = builtins.mapAttrs (_: linkFacts) (plan.links or { });
      _endBits = builtins.mapAttrs (_: endBits) (plan.links or { });
    };

in
{
  inherit
    util
    ip
    t
    checks
    defaults
    optional
    families
    tomlPath
    finding
    error
    warning
    indexed
    names
    tokenError
    valid
    mapHosts
    mapLinks
    linkOf
    knownSets
    linkFacts
    withFacts
    ;
}

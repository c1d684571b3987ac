# Plan rules of [tuning]: over the defaults.
let
  inherit (builtins)
    all
    attrNames
    concatMap
    concatStringsSep
    elem
    elemAt
    filter
    genList
    head
    isString
    length
    listToAttrs
    match
    toJSON
    ;
  inherit (import ./common.nix)
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

  tuningRules =
    plan:
    map (p: error [ "tuning" (snake p.key) ] p.message) (checks.tuningProblems (defaults.tuning // util.camelCaseAttrs (plan.tuning or { })));

  # "keepaliveTime" -> "keepalive_time"
  snake = util.snakeCase;

in
{
  inherit
    tuningRules
    ;
}

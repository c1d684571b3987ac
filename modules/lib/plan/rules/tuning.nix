# Plan rules of [tuning]: over the defaults.
let
  inherit (builtins)
    ;
  inherit (import ./common.nix)
    util
    checks
    defaults
    error
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

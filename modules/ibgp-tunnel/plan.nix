# services.ibgpTunnel.plan: fill every option from the plan at mkDefault, so
# anything set by hand still wins. The mkDefault sits on each leaf: on a
# whole attrset (links) one hand-set attribute would discard all of the plan's. Key file paths are left to the options'
# own (sops-aware) defaults.
{ config, lib, ... }:
let
  core = import ../lib;
  cfg = config.services.ibgpTunnel;
  hasPlan = cfg.plan != null;
  spec = core.hostFromPlan (core.readPlan cfg.plan) cfg.hostName;

  defaultLeaves = value: if builtins.isAttrs value then builtins.mapAttrs (_: defaultLeaves) value else lib.mkDefault value;

  withoutKeyFiles = link: link // { peer = removeAttrs link.peer [ "presharedKeyFile" ]; };

  fromPlan = spec // {
    links = builtins.mapAttrs (_: withoutKeyFiles) spec.links;
    dn42 = removeAttrs spec.dn42 [ "privateKeyFile" ];
    # A plan host without [hosts.<h>.autopeer] has none in its spec: the
    # options' defaults (off).
    autopeer = spec.autopeer or { };
  };

  # A static list: the set of definitions must not depend on cfg.plan, or
  # evaluating cfg.plan would recurse into itself.
  # The table's plan and host fields and the options holding its other scopes
  # (links, dn42Peers, tuning, dn42).
  fields = core.fields.optionNames "plan" ++ core.fields.optionNames "host" ++ core.fields.containers;
in
{
  # The content is read only with a plan: a submodule's definitions are pushed
  # down (and so read) whatever mkIf says, and which keys the spec has (autopeer)
  # depends on the plan.
  config.services.ibgpTunnel = lib.genAttrs fields (field: lib.mkIf hasPlan (if hasPlan then defaultLeaves fromPlan.${field} else { }));
}

# The pure core: builtins only, so plain `nix-instantiate --eval` runs it
# without nixpkgs. The NixOS module and the Python helper both use it.
let
  defaults = import ./defaults.nix;
in
rec {
  inherit defaults;

  # plan attrset (builtins.fromTOML) -> host name -> host spec
  hostFromPlan = import ./host-from-plan.nix;

  # host spec -> artifacts (bird.conf, WireGuard, nftables, sysctls, ports)
  render = import ./render;

  # host spec -> [ { path; message; } ] for what the option types cannot say
  problems = import ./problems.nix;

  # plan -> [ { path; severity; message; } ] with TOML paths: every network
  # rule of a whole plan (what `ibgp-tunnel check` reports beyond shape).
  planProblems = import ./plan-problems.nix;

  # The plan fields declared once: options, plan mapping and schema come from it.
  fields = import ./fields.nix;

  # One grammar per kind of token: regex (for types.strMatching), problem, emit.
  tokens = import ./tokens.nix;

  # The seed's plain BIRD sessions: no BFD, no graceful restart, BIRD's
  # default timers, no import limit. `spec // { tuning = plainTuning; }`.
  plainTuning = builtins.mapAttrs (_: _: null) defaults.tuning // {
    bfd = false;
    gracefulRestart = false;
  };

  readPlan = file: builtins.fromTOML (builtins.readFile file);

  renderHost = planFile: name: render (hostFromPlan (readPlan planFile) name);
}

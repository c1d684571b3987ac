# The pure core: builtins only, so plain `nix-instantiate --eval` runs it
# without nixpkgs. The NixOS module and the Python helper both use it, and
# only through this file. Its stages, each reading only those before it
# (python/tests/test_core_layout.py holds them to it):
#
#   base/     addresses, helpers, the shared constants (defaults*.toml)
#   grammar/  one grammar per token, and the checkers built on them
#   plan/     a plan: its links, a host's spec from it, and the plan's rules
#   spec/     a host spec: its shape, defaults filled in, and its rules
#   render/   a checked spec -> artifacts (resources/: fixed BIRD logic, data)
let
  defaults = import ./base/defaults.nix;
in
rec {
  inherit defaults;

  # The DN42 constants and the paths and secret names derived from them.
  dn42Defaults = import ./base/dn42-defaults.nix;

  # Addresses (parse, contain, format) and small list/string helpers.
  ip = import ./base/ip.nix;
  util = import ./base/util.nix;

  # plan attrset (builtins.fromTOML) -> host name -> host spec
  hostFromPlan = import ./plan/host.nix;

  # plan -> each link with its ends' facts (who dials whom, addresses).
  planLinks = import ./plan/links.nix;

  # host spec -> artifacts (bird.conf, WireGuard, nftables, sysctls, ports)
  render = import ./render;

  # host spec -> [ { path; message; } ] for what the option types cannot say
  problems = import ./spec/problems.nix;

  # plan -> [ { path; severity; message; } ] with TOML paths: every network
  # rule of a whole plan (what `ibgp-tunnel check` reports beyond shape).
  planProblems = import ./plan/problems.nix;

  # name -> [ shared file ] -> the text of a resources/ script as a unit
  # installs it, the shared shell functions inside (render/resource-script.nix).
  resourceScript = import ./render/resource-script.nix;

  # RPKI over RTR on a spec (source = "rtr" on a reflector with DN42 peers)
  # and the caches its `protocol rpki` blocks ask, in order: the alert rules' view.
  dn42Rtr = { inherit (import ./spec/dn42.nix) rtrOn rtrCachesOf; rpkiProtocol = (import ./grammar/dn42-symbols.nix).rpkiProtocol; };

  # The names the fixed DN42 BIRD logic defines: no peer's session takes one.
  dn42OwnSymbols = (import ./grammar/dn42-symbols.nix).ownSymbols;

  # DN42's route collector session: its settings when on (else null), its protocol name.
  dn42Collector = { inherit (import ./spec/dn42.nix) collectorOf collectorProtocol; };

  # The route model (spec/routes.nix): sessions, interfaces and expected
  # routes per host; with it the one BIRD prefix-pattern matcher.
  routes = import ./spec/routes.nix;

  # The plan fields declared once: options, plan mapping and schema come from it.
  fields = import ./grammar/fields.nix;

  # What a host spec holds, each leaf with its grammar (spec/shape.nix):
  # mostly the field table's, so test_fields.py holds the two together.
  specShape = (import ./spec/shape.nix).shape;

  # One grammar per kind of token: regex (for types.strMatching), problem, emit.
  tokens = import ./grammar/tokens.nix;

  # The seed's plain BIRD sessions: no BFD, no graceful restart, BIRD's
  # default timers, no import limit. `spec // { tuning = plainTuning; }`.
  plainTuning = builtins.mapAttrs (_: _: null) defaults.tuning // {
    bfd = false;
    gracefulRestart = false;
  };

  # Self-service DN42 peering: spec -> requests -> { problems; peers; bird;
  # wireguard; nft; }, each request a DN42 peer rendered as a static one.
  autopeer = import ./render/autopeer.nix;

  # Where autopeer's runtime state lives (base/defaults.toml [autopeer]).
  autopeerPaths = defaults.autopeer;

  # Self-service peering on a spec (its settings when on, else null): the
  # alert rules' view (their sessions matched by autopeerPaths.name_prefix).
  dn42Autopeer = { inherit (import ./spec/dn42.nix) autopeerOf; };

  readPlan = import ./plan/read.nix;

  renderHost = planFile: name: render (hostFromPlan (readPlan planFile) name);
}

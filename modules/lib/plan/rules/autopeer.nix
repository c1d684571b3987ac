# Plan rules of self-service DN42 peering ([hosts.<h>.autopeer]): the checker
# of grammar/autopeer-checks.nix with TOML paths, the record's defaults filled
# in as the spec would have them.
let
  inherit (builtins) isAttrs;
  inherit (import ./common.nix) error mapHosts knownSets;
  autopeer = import ../../grammar/autopeer-checks.nix;
  defaults = builtins.listToAttrs (map (f: { name = f.key; value = f.default or null; }) autopeer.fields);
in
plan:
mapHosts plan (
  hostName: host:
  let
    a = host.autopeer or null;
    base = [ "hosts" hostName "autopeer" ];
  in
  if !(isAttrs a) then
    [ ]
  else
    map (f: error (if f.key == null then base else base ++ [ f.key ]) f.message) (autopeer.problems {
      a = defaults // a;
      role = host.role or "client";
      prefixSets = knownSets plan;
    })
)

# Every host of every committed plan renders, and BIRD 2 and BIRD 3 both
# accept its bird.conf.
{
  lib,
  runCommand,
  writeText,
  bird2,
  bird3,
  core,
}:
let
  plans = {
    example = ../hosts/plan.toml;
    three-clients = ../python/tests/plans/three-clients.toml;
  };

  configs = lib.concatLists (
    lib.mapAttrsToList (
      planName: file:
      let
        plan = core.readPlan file;
      in
      map (host: writeText "${planName}-${host}-bird.conf" (core.render (core.hostFromPlan plan host)).birdConfig) (
        builtins.attrNames plan.hosts
      )
    ) plans
  );
in
runCommand "ibgp-tunnel-render-check" { nativeBuildInputs = [ ]; } ''
  ${lib.concatMapStrings (conf: ''
    echo "checking ${conf.name}"
    ${bird2}/bin/bird -p -c ${conf}
    ${bird3}/bin/bird -p -c ${conf}
  '') configs}
  touch $out
''

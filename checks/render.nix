# Every host of every committed plan renders, and BIRD 2 and BIRD 3 both
# accept its bird.conf, checked as the module's services.bird checks it (the
# data and the script: ./render-check.nix, which checks/run/render.py runs
# here).
{
  runCommand,
  writeText,
  bird2,
  bird3,
  core,
}:
let
  check = import ./render-check.nix { inherit core; };
in
runCommand "ibgp-tunnel-render-check" { } (
  check.scriptFor {
    inherit (check) hosts;
    birds = [
      bird2
      bird3
    ];
    configFile = host: writeText "${host.name}-bird.conf" host.birdConfig;
  }
)

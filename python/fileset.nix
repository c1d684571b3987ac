# The files python/package.nix builds and tests from (its src fileset), as a
# plain list so that checks/run/python.py copies exactly these without
# nixpkgs. Builtins only: no lib here.
#
# The tests read the core, the example plan and its test secrets beside
# python/, package.nix (its test selection), BIRD's stop script, the flake's
# deployNodes (modules/fleet/deploy-rs.nix, which test_template.py calls) and
# the list of tools scripts/setup installs.
[
  ./pyproject.toml
  ./hatch_build.py
  ./src
  ./tests
  ./package.nix
  ./fileset.nix
  ../modules/lib
  ../templates
  ../monitoring
  ../modules/ibgp-tunnel/bird-stop.nix
  ../modules/fleet/deploy-rs.nix
  ../scripts/setup
  ../hosts/plan.toml
  ../secrets/test
  ../secrets/test-age-key.txt
  ../.sops.yaml
]

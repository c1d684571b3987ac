# checks.render as data and script, builtins only: checks/render.nix hands
# the script nixpkgs' BIRDs and writeText files; checks/run/render.py
# evaluates this same file with nix-instantiate, hands it the BIRDs of
# scripts/setup and files it wrote, and runs the text it gets back.
{ core }:
let
  inherit (builtins) attrNames concatLists concatStringsSep match;

  plans = {
    example = ../hosts/plan.toml;
    # The example with ROA files (the example runs RTR): the stubbed includes.
    example-roa-files = ../python/tests/plans/example-roa-files.toml;
    three-clients = ../python/tests/plans/three-clients.toml;
  };

  # The name becomes a directory and a store file name in the script.
  checkedName =
    name: if match "[a-z0-9][a-z0-9-]*" name != null then name else throw "checks/render-check.nix: host label \"${name}\" is not [a-z0-9-]+: rename the host in its plan";

  hostsOf =
    planName: file:
    let
      plan = core.readPlan file;
    in
    map (
      host:
      let
        artifacts = core.render (core.hostFromPlan plan host);
      in
      {
        name = checkedName "${planName}-${host}";
        inherit (artifacts) birdConfig;
        # What services.bird.preCheckConfig gets from the module
        # (modules/ibgp-tunnel/dn42.nix): bird.conf includes files that exist
        # only at run time, and the core says which and how to stub them.
        preCheckConfig = if artifacts.dn42Roa == null then "" else artifacts.dn42Roa.preCheckConfig;
      }
    ) (attrNames plan.hosts);
in
{
  hosts = concatLists (map (planName: hostsOf planName plans.${planName}) (attrNames plans));

  # birds: BIRD packages (each has bin/bird); configFile: host -> the path of
  # a file holding host.birdConfig; hosts: the list above (the test of the
  # runner hands it a variant). Per host and BIRD, the steps of nixpkgs'
  # services.bird checkPhase: bird.conf linked into an empty directory, the
  # preCheckConfig, then `bird -d -p`.
  scriptFor =
    {
      birds,
      configFile,
      hosts,
    }:
    concatStringsSep "\n" (
      map (host: ''
        echo "checking ${host.name}"
        mkdir ${host.name}
        (
          cd ${host.name}
          ln -s ${configFile host} bird.conf
          ${host.preCheckConfig}
          ${concatStringsSep "\n  " (map (bird: "${bird}/bin/bird -d -p -c bird.conf || { exit=$?; cat -n bird.conf; exit $exit; }") birds)}
        )
      '') hosts
    )
    + "\ntouch $out\n";
}

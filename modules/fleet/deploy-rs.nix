# deploy-rs's `deploy.nodes` for every host of a plan (builtins only):
#
#   deploy.nodes = ibgp-tunnel.lib.deployNodes {
#     inherit deploy-rs;
#     plan = ./hosts/plan.toml;
#     nixosConfigurations = self.nixosConfigurations;
#     nodes.home.hostname = "home.lan";     # optional, per host
#   };
#
# Each node deploys the host's system profile as root (deploy-rs's schema,
# interface.json: hostname required, profiles.<name>.path). hostname defaults
# to the plan's public endpoint for hosts that have one (reflectors) and to
# the host's name otherwise (an ~/.ssh/config entry or DNS name); anything in
# `nodes.<host>` wins, attribute by attribute.
{
  deploy-rs,
  plan,
  nixosConfigurations,
  nodes ? { },
}:
let
  inherit (builtins) attrNames concatStringsSep filter isString mapAttrs;
  hosts = (builtins.fromTOML (builtins.readFile plan)).hosts or { };

  missing = filter (name: !(nixosConfigurations ? ${name})) (attrNames hosts);

  # Attribute by attribute, so `nodes.x.profiles.system.sshOpts` keeps the path.
  update =
    base: extra:
    base
    // mapAttrs (
      name: value:
      if builtins.isAttrs value && builtins.isAttrs (base.${name} or null) then update base.${name} value else value
    ) extra;

  systemOf =
    host:
    let
      platform = host.config.nixpkgs.hostPlatform;
    in
    if isString platform then platform else platform.system;

  node =
    name: host:
    let
      system = systemOf host;
      activate =
        deploy-rs.lib.${system}.activate.nixos
          or (throw "ibgp-tunnel deployNodes: deploy-rs has no lib.${system}.activate.nixos (host ${name})");
    in
    update {
      hostname = hosts.${name}.endpoint or name;
      sshUser = "root";
      profiles.system = {
        user = "root";
        path = activate nixosConfigurations.${name};
      };
    } (nodes.${name} or { });
in
if missing != [ ] then
  throw "ibgp-tunnel deployNodes: the plan's hosts ${concatStringsSep ", " missing} have no nixosConfigurations entry; add one per host of the plan (the template's flake.nix makes them with genAttrs)"
else
  mapAttrs node (removeAttrs nixosConfigurations (filter (name: !(hosts ? ${name})) (attrNames nixosConfigurations)))

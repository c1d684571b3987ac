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
#
# IPv6 literals go without brackets. deploy-rs passes `hostname` unchanged
# to `ssh <sshUser>@<hostname>` (activation, src/deploy.rs) and to
# `nix copy --to ssh://<sshUser>@<hostname>` (src/push.rs; serokell/deploy-rs
# d5eff7f). OpenSSH keeps brackets in `user@[addr]` and resolves "[addr]" as
# a name (`ssh -G`), which broke activation in deploy-rs#165; Nix's ssh://
# store takes the literal with or without them (NixOS/nix#4319). So a
# bracketed literal given in `nodes.<host>.hostname` is unwrapped.
#
# A node whose hostname is an address inside one of the plan's tunnel
# subnets is reached through a tunnel the deployment may restart: the SSH
# connection drops and deploy-rs's magic rollback (on by default) undoes the
# deployment. That gets an evaluation warning.
{
  deploy-rs,
  plan,
  nixosConfigurations,
  nodes ? { },
}:
let
  inherit (builtins) attrNames concatMap concatStringsSep filter head isString mapAttrs match;
  ip = (import ../lib).ip;
  planData = builtins.fromTOML (builtins.readFile plan);
  hosts = planData.hosts or { };

  # builtins.warn from Nix 2.23 on; a trace where it is missing.
  warn = builtins.warn or (message: builtins.trace "warning: ${message}");

  unbracketed =
    hostname:
    let
      inner = match "[[]([0-9A-Fa-f:.]+)[]]" hostname;
    in
    if isString hostname && inner != null && ip.isIPv6 (head inner) then head inner else hostname;

  # Every tunnel subnet of the plan, with the link it belongs to.
  tunnelSubnets = concatMap (
    linkName:
    map (subnet: { inherit linkName subnet; }) (
      filter isString [
        (planData.links.${linkName}.ipv4 or null)
        (planData.links.${linkName}.ipv6 or null)
      ]
    )
  ) (attrNames (planData.links or { }));

  throughTunnel =
    name: hostname: value:
    let
      inside = filter (t: isString hostname && ip.inSubnet t.subnet hostname) tunnelSubnets;
      t = head inside;
    in
    if inside == [ ] then
      value
    else
      warn "ibgp-tunnel deployNodes: node ${name}'s hostname ${hostname} is inside link ${t.linkName}'s tunnel subnet ${t.subnet}: a deployment that restarts that tunnel (WireGuard or its keys) cuts its own SSH connection, and deploy-rs's magic rollback then undoes it. Set nodes.${name}.hostname to an address outside the plan's tunnels (its public endpoint or a LAN address)." value;

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
    let
      merged = update {
        hostname = hosts.${name}.endpoint or name;
        sshUser = "root";
        profiles.system = {
          user = "root";
          path = activate nixosConfigurations.${name};
        };
      } (nodes.${name} or { });
      hostname = unbracketed merged.hostname;
    in
    throughTunnel name hostname (merged // { inherit hostname; });
in
if missing != [ ] then
  throw "ibgp-tunnel deployNodes: the plan's hosts ${concatStringsSep ", " missing} have no nixosConfigurations entry; add one per host of the plan (the template's flake.nix makes them with genAttrs)"
else
  mapAttrs node (removeAttrs nixosConfigurations (filter (name: !(hosts ? ${name})) (attrNames nixosConfigurations)))

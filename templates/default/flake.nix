# Your hosts, joined by ibgp-tunnel. Every host of hosts/plan.toml becomes a
# nixosConfigurations entry (its own settings in hosts/<name>/) and a deploy-rs
# node: `nix flake check`, then `nix run github:serokell/deploy-rs -- .`
# deploys them all. A flake in a git repository sees only the files git
# tracks: `git add` new files, secrets/<host>.yaml after `ibgp-tunnel keys`
# included.
{
  description = "Hosts joined by iBGP over WireGuard (ibgp-tunnel)";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    sops-nix = {
      url = "github:Mic92/sops-nix";
      inputs.nixpkgs.follows = "nixpkgs";
    };
    ibgp-tunnel = {
      # REPLACE: where you got ibgp-tunnel (the flake you ran `nix flake init -t` on).
      url = "github:REPLACE-ME/ibgp-tunnel";
      inputs.nixpkgs.follows = "nixpkgs";
      inputs.sops-nix.follows = "sops-nix";
    };
    deploy-rs = {
      url = "github:serokell/deploy-rs";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs =
    {
      self,
      nixpkgs,
      sops-nix,
      ibgp-tunnel,
      deploy-rs,
      ...
    }:
    let
      plan = ./hosts/plan.toml;
      hostNames = builtins.attrNames (builtins.fromTOML (builtins.readFile plan)).hosts;

      host =
        name:
        nixpkgs.lib.nixosSystem {
          modules = [
            sops-nix.nixosModules.sops
            ibgp-tunnel.nixosModules.default
            ./hosts/common.nix
            ./hosts/${name}
            {
              networking.hostName = name;
              services.ibgpTunnel = {
                inherit plan;
                hostName = name;
                # Written by `ibgp-tunnel keys`.
                sops.file = ./secrets/${name}.yaml;
              };
            }
          ];
        };
    in
    {
      nixosConfigurations = nixpkgs.lib.genAttrs hostNames host;

      deploy.nodes = ibgp-tunnel.lib.deployNodes {
        inherit deploy-rs plan;
        inherit (self) nixosConfigurations;
        # Per host, e.g.: nodes.home.hostname = "192.168.1.2";
      };

      # Alert rules for every host, for your Prometheus server:
      # services.prometheus.ruleFiles =
      #   [ (pkgs.writeText "ibgp-tunnel.rules.json" (builtins.toJSON self.alertRules)) ];
      alertRules = ibgp-tunnel.lib.alertRules self.nixosConfigurations;

      checks = builtins.mapAttrs (_: lib: lib.deployChecks self.deploy) deploy-rs.lib;
    };
}

# A host flake made from templates/default (a copy of the directory, as
# `nix flake init -t` makes it, at `dir`) with its inputs stood in as
# ./eval-flake.nix does for flake.nix: nixpkgs' real lib (nixosSystem over
# the declared options), the real sops-nix module, this repository's flake
# (its outputs over the same stand-ins) as the ibgp-tunnel input, and for
# deploy-rs the two lib functions the template calls (lib.<system>.activate.nixos,
# lib.<system>.deployChecks, as in deploy-rs's flake.nix), whose results name
# the configuration they were given. Nothing is built.
{
  lib,
  sops,
  dir,
}:
let
  systems = [
    "x86_64-linux"
    "aarch64-linux"
  ];
  pkgs = import ./stub-pkgs.nix lib;
  nixpkgs = {
    lib = lib // {
      nixosSystem = { modules, ... }: import ./evaluate.nix { inherit lib modules; };
    };
    legacyPackages = lib.genAttrs systems (_: pkgs);
  };
  sops-nix.nixosModules.sops = sops;
  ibgp-tunnel = (import ../../flake.nix).outputs {
    self = ibgp-tunnel;
    inherit nixpkgs sops-nix;
  };
  deploy-rs.lib = lib.genAttrs systems (system: {
    activate.nixos = base: "${builtins.storeDir}/activatable-${system}-${base.config.networking.hostName}";
    deployChecks = deploy: {
      deploy-schema = builtins.toJSON deploy;
      deploy-activate = "activate";
    };
  });

  flake = import (dir + "/flake.nix");
  self = flake.outputs {
    inherit
      self
      nixpkgs
      sops-nix
      ibgp-tunnel
      deploy-rs
      ;
  };
in
{
  inherit (flake) inputs;
  outputs = builtins.attrNames self;
  nixosConfigurations = lib.mapAttrs (_: import ./summary.nix lib) self.nixosConfigurations;
  monitoring = lib.mapAttrs (_: host: {
    exporters = {
      inherit (host.config.services.prometheus.exporters.bird)
        enable
        birdVersion
        birdSocket
        openFirewall
        ;
      wireguard = { inherit (host.config.services.prometheus.exporters.wireguard) enable interfaces openFirewall; };
    };
    extraInputRules = host.config.networking.firewall.extraInputRules;
  }) self.nixosConfigurations;
  inherit (self) deploy alertRules;
  checks = lib.mapAttrs (_: builtins.attrNames) self.checks;
}

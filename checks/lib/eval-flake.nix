# flake.nix's outputs with stand-in inputs: nixpkgs' real lib (its
# nixosSystem replaced by ./evaluate.nix over the declared options), the
# stand-in pkgs, and the real sops-nix module. Shows that the flake wires the
# example hosts as the tests evaluate them and exposes what README promises;
# nothing here is built.
{
  lib,
  sops,
}:
let
  flake = import ../../flake.nix;
  pkgs = import ./stub-pkgs.nix lib;
  nixpkgs = {
    lib = lib // {
      nixosSystem = { modules, ... }: import ./evaluate.nix { inherit lib modules; };
    };
    legacyPackages = lib.genAttrs [
      "x86_64-linux"
      "aarch64-linux"
    ] (_: pkgs);
  };
  self = flake.outputs {
    inherit self nixpkgs;
    sops-nix.nixosModules.sops = sops;
  };
  names = lib.mapAttrs (_: builtins.attrNames);
in
{
  inputs = builtins.attrNames flake.inputs;
  outputs = builtins.attrNames self;
  packages = names self.packages;
  checks = names self.checks;
  apps = names self.apps;
  nixosModules = builtins.attrNames self.nixosModules;
  nixosConfigurations = lib.mapAttrs (_: import ./summary.nix lib) self.nixosConfigurations;
}

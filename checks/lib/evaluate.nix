# lib.evalModules over the declared NixOS options (./nixos-option-decls.nix)
# with ./stub-pkgs.nix as `pkgs`: the evaluated configuration itself, for
# callers that need `config` (the VM test's nodes read each other's).
{
  lib,
  modules,
  specialArgs ? { },
}:
lib.evalModules {
  specialArgs = {
    pkgs = import ./stub-pkgs.nix lib;
  }
  // specialArgs;
  modules = [ ./nixos-option-decls.nix ] ++ modules;
}

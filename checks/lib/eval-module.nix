# Evaluate NixOS-style modules against the declared NixOS options
# (./nixos-option-decls.nix), the REAL sops-nix module and ./stub-pkgs.nix,
# and return plain data for `nix-instantiate --eval --strict --json`:
#
#   nix-instantiate --eval --strict --json checks/lib/eval-module.nix \
#     --arg lib "import $CACHE/nixpkgs-lib/<rev>/lib" \
#     --arg sops "$CACHE/sops-nix/<rev>/modules/sops" \
#     --arg modules '[ ./modules/ibgp-tunnel ./hosts/pve ]'
#
# Arguments:
#   lib          nixpkgs.lib (`import <nixpkgs-lib>/lib`)
#   modules      list of modules (paths, attrsets or functions)
#   sops         the sops-nix module (`<sops-nix>/modules/sops`, what
#                sops-nix.nixosModules.sops imports), or null for a host
#                without sops-nix
#   specialArgs  passed to lib.evalModules
#
# Result: { failedAssertions = [ message ]; warnings = [ message ]; config = { ... }; }
# `config` holds the values the ibgp-tunnel module sets and what sops-nix
# derives from them (its manifest is forced, so its option types and its
# sopsFile checks run), as JSON-safe data.
{
  lib,
  modules,
  sops ? null,
  specialArgs ? { },
}:
let
  eval = import ./evaluate.nix {
    inherit lib specialArgs;
    modules = lib.optional (sops != null) sops ++ modules;
  };
in
import ./summary.nix lib eval

# Evaluate the node configurations of ../vm-test.nix as the NixOS test
# driver would (without building or booting them), with the real sops-nix
# module, and summarise each node (./summary.nix):
#
#   nix-instantiate --eval --strict --json checks/lib/eval-vm-test.nix \
#     --arg lib "import $CACHE/nixpkgs-lib/<rev>/lib" \
#     --arg sops "$CACHE/sops-nix/<rev>/modules/sops"
#
# What the driver adds to every node is mirrored from
# nixos/lib/testing/network.nix: nodes are numbered 1.. in name order, the
# n-th entry of virtualisation.vlans becomes eth<n> with 192.168.<vlan>.<node>/24,
# networking.primaryIPAddress is the first of those, and `nodes` (a module
# argument) holds every node's config.
{
  lib,
  sops,
  vmTest ? ../vm-test.nix,
}:
let
  test = import vmTest {
    sops-nix.nixosModules.sops = sops;
    ibgpTunnel = ../../modules/ibgp-tunnel;
  } { inherit lib; };

  names = builtins.attrNames test.nodes;
  numberOf = name: 1 + lib.lists.findFirstIndex (n: n == name) null names;

  driver =
    name:
    { config, ... }:
    let
      ethernets = lib.imap1 (index: vlan: {
        name = "eth${toString index}";
        value.ipv4.addresses = [
          {
            address = "192.168.${toString vlan}.${toString (numberOf name)}";
            prefixLength = 24;
          }
        ];
      }) config.virtualisation.vlans;
    in
    {
      # nixos/modules/virtualisation/qemu-vm.nix; network.nix declares nothing
      # but sets networking.primaryIPAddress, declared as a string.
      options.virtualisation.vlans = lib.mkOption {
        type = lib.types.listOf lib.types.ints.unsigned;
        default = [ 1 ];
      };
      options.networking.primaryIPAddress = lib.mkOption {
        type = lib.types.str;
        default = "";
      };
      config = {
        networking.hostName = lib.mkDefault name;
        networking.interfaces = lib.listToAttrs ethernets;
        networking.primaryIPAddress = lib.optionalString (ethernets != [ ]) (
          lib.head (lib.head ethernets).value.ipv4.addresses
        ).address;
      };
    };

  evaluated = lib.genAttrs names (
    name:
    import ./evaluate.nix {
      inherit lib;
      modules = [
        (driver name)
        test.nodes.${name}
      ];
      specialArgs.nodes = lib.mapAttrs (_: node: node.config) evaluated;
    }
  );
in
lib.mapAttrs (_: import ./summary.nix lib) evaluated

# The image variants the flake exposes (packages.x86_64-linux.*-image), for
# module-evaluation tests: nixos/modules/image/images.nix extends the host's
# configuration with the variant's module plus the host's own
# image.modules.<variant>. Building an image needs nixpkgs; what is mirrored
# here is what those modules define on options the example hosts also set,
# so a conflict between a host and its image shows up in evaluation.
# UPSTREAM: nixos/modules/virtualisation/disk-image.nix (qemu-efi, raw-efi)
# and nixos/modules/virtualisation/proxmox-image.nix (proxmox, default
# seabios/legacy), at the revisions in docs/nixos-options.md.
{ lib }:
let
  diskImage =
    { format }:
    {
      options.image.format = lib.mkOption {
        type = lib.types.enum [
          "raw"
          "qcow2"
        ];
        default = "qcow2";
      };
      config = {
        image.format = format;
        boot.loader.systemd-boot.enable = lib.mkDefault true;
        fileSystems = lib.mkImageMediaOverride {
          "/" = {
            device = "/dev/disk/by-label/nixos";
            autoResize = true;
            fsType = "ext4";
          };
          "/boot" = {
            device = "/dev/disk/by-label/ESP";
            fsType = "vfat";
          };
        };
      };
    };

  proxmox =
    { config, ... }:
    {
      options.proxmox = {
        qemuConf.bios = lib.mkOption {
          type = lib.types.enum [
            "seabios"
            "ovmf"
          ];
          default = "seabios";
        };
        cloudInit.enable = lib.mkOption {
          type = lib.types.bool;
          default = true;
        };
      };
      config = {
        assertions = [
          {
            assertion = config.boot.loader.systemd-boot.enable -> config.proxmox.qemuConf.bios == "ovmf";
            message = "systemd-boot requires 'ovmf' bios";
          }
        ];
        boot.loader.grub.device = lib.mkDefault "/dev/vda";
        fileSystems."/" = {
          device = "/dev/disk/by-label/nixos";
          autoResize = true;
          fsType = "ext4";
        };
        networking = lib.mkIf config.proxmox.cloudInit.enable {
          hostName = lib.mkForce "";
          useDHCP = false;
        };
        services.openssh.enable = lib.mkDefault true;
      };
    };
in
{
  qemu-efi = diskImage { format = "qcow2"; };
  raw-efi = diskImage { format = "raw"; };
  inherit proxmox;
}

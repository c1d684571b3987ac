# The home router (the plan's client): its machine. REPLACE with its layout
# (nixos-generate-config writes hardware-configuration.nix).
{
  nixpkgs.hostPlatform = "x86_64-linux";
  boot.loader.grub.device = "/dev/vda";
  fileSystems."/" = {
    device = "/dev/disk/by-label/nixos";
    fsType = "ext4";
  };
}

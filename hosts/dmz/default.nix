# The seed's VPS: peers with DN42 and reflects routes to the home router over
# the wg-ibgp tunnel. Everything comes from ../plan.toml.
{
  imports = [ (import ../common.nix "dmz") ];

  # An EFI VPS with the layout of the flake's dmz-image (the qemu-efi image
  # variant): root labelled nixos, an ESP labelled ESP, systemd-boot.
  boot.loader.grub.enable = false;
  boot.loader.systemd-boot.enable = true;
  fileSystems."/" = {
    device = "/dev/disk/by-label/nixos";
    fsType = "ext4";
  };
  fileSystems."/boot" = {
    device = "/dev/disk/by-label/ESP";
    fsType = "vfat";
  };
}

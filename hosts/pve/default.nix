# The seed's home router: a pure iBGP client that installs DN42 and
# "route via VPS" prefixes towards the tunnel and masquerades its LAN.
{
  imports = [ (import ../common.nix "pve") ];

  # The seed's forward chain filters; the module adds its accept rules to it.
  networking.firewall.filterForward = true;
  # Your LAN's own way out still needs its rule once forwarding is filtered.
  networking.firewall.extraForwardRules = ''
    iifname "vmbr0" oifname "eth0" accept
  '';

  # A Proxmox VM with the layout of the flake's pve-image (the proxmox image
  # variant, legacy BIOS): root labelled nixos on the virtio disk.
  boot.loader.grub.device = "/dev/vda";
  fileSystems."/" = {
    device = "/dev/disk/by-label/nixos";
    fsType = "ext4";
  };
  # A router keeps its own addressing: no cloud-init (which would also blank
  # networking.hostName and turn networking.useDHCP off in the image).
  image.modules.proxmox.proxmox.cloudInit.enable = false;
}

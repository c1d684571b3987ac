# The seed's home router: a pure iBGP client that installs DN42 and
# "route via VPS" prefixes towards the tunnel and masquerades its LAN.
{
  services.ibgpTunnel = {
    enable = true;
    plan = ../plan.toml;
    hostName = "pve";
    # Encrypted to the test key: run `ibgp-tunnel keys` to make your own.
    sops.file = ../../secrets/test/pve.yaml;
  };

  services.openssh.enable = true;
  sops.age.sshKeyPaths = [ "/etc/ssh/ssh_host_ed25519_key" ];

  # The seed's forward chain filters; the module adds its accept rules to it.
  networking.firewall.filterForward = true;
  # Your LAN's own way out still needs its rule once forwarding is filtered.
  networking.firewall.extraForwardRules = ''
    iifname "vmbr0" oifname "eth0" accept
  '';

  networking.hostName = "pve";
  networking.useDHCP = true;

  boot.loader.grub.device = "/dev/sda";
  fileSystems."/" = {
    device = "/dev/disk/by-label/nixos";
    fsType = "ext4";
  };
  system.stateVersion = "25.11";
}

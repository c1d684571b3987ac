# The seed's VPS: peers with DN42 over eBGP and reflects routes to the home
# router over the wg-ibgp tunnel. Everything comes from ../plan.toml; only
# machine facts are set here.
{
  services.ibgpTunnel = {
    enable = true;
    plan = ../plan.toml;
    hostName = "dmz";
    # Encrypted to the test key: run `ibgp-tunnel keys` to make your own.
    sops.file = ../../secrets/test/dmz.yaml;
  };

  # sops-nix decrypts with the host's SSH key; `ibgp-tunnel age-recipient
  # --ssh-key /etc/ssh/ssh_host_ed25519_key.pub` gives its recipient for .sops.yaml.
  services.openssh.enable = true;
  sops.age.sshKeyPaths = [ "/etc/ssh/ssh_host_ed25519_key" ];

  networking.hostName = "dmz";
  networking.useDHCP = true;

  boot.loader.grub.device = "/dev/sda";
  fileSystems."/" = {
    device = "/dev/disk/by-label/nixos";
    fsType = "ext4";
  };
  system.stateVersion = "25.11";
}

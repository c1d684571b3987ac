# What both example hosts share: the plan, sops-nix decrypting with the SSH
# host key, and a minimal machine. `name` is the host's name in the plan.
name: {
  services.ibgpTunnel = {
    enable = true;
    plan = ./plan.toml;
    hostName = name;
    # Encrypted to the test key: run `ibgp-tunnel keys` to make your own.
    sops.file = ../secrets/test/${name}.yaml;
  };

  # sops-nix decrypts with the host's SSH key; `ibgp-tunnel age-recipient
  # --ssh-key /etc/ssh/ssh_host_ed25519_key.pub` gives its recipient for .sops.yaml.
  services.openssh.enable = true;
  sops.age.sshKeyPaths = [ "/etc/ssh/ssh_host_ed25519_key" ];

  networking.hostName = name;
  networking.useDHCP = true;

  boot.loader.grub.device = "/dev/sda";
  fileSystems."/" = {
    device = "/dev/disk/by-label/nixos";
    fsType = "ext4";
  };
  system.stateVersion = "25.11";
}

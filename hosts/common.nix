# What both example hosts share: the plan, sops-nix, the nftables firewall and
# a minimal machine. `name` is the host's name in the plan.
name: {
  services.ibgpTunnel = {
    enable = true;
    plan = ./plan.toml;
    hostName = name;
    # Encrypted to the TEST-ONLY key secrets/test-age-key.txt: run
    # `ibgp-tunnel keys` to make your own (README, "Deploying the examples").
    sops.file = ../secrets/test/${name}.yaml;
    # Prometheus exporters for BIRD and WireGuard; their ports stay closed.
    monitoring.enable = true;
  };

  # sops-nix decrypts with the age key in this file, never in the store. The
  # example's secrets are encrypted to the test key, so a trial deployment
  # copies secrets/test-age-key.txt here. For your own network, either put a
  # host age key here, or decrypt with the SSH host key instead:
  #   sops.age.keyFile = null;
  #   sops.age.sshKeyPaths = [ "/etc/ssh/ssh_host_ed25519_key" ];
  # with the recipient from `ibgp-tunnel age-recipient --ssh-key
  # /etc/ssh/ssh_host_ed25519_key.pub` in .sops.yaml before `ibgp-tunnel keys`.
  sops.age.keyFile = "/var/lib/sops-nix/key.txt";
  sops.age.sshKeyPaths = [ ];
  sops.gnupg.sshKeyPaths = [ ];

  # The module's rules are nftables rules; it never switches the backend.
  networking.nftables.enable = true;

  # Deployment logs in as root over SSH: add your public key here.
  services.openssh.enable = true;
  users.users.root.openssh.authorizedKeys.keys = [ ];
  networking.hostName = name;
  networking.useDHCP = true;
  system.stateVersion = "25.11";
}

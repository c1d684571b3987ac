# What every host shares. Its name, the plan and its secrets file come from
# flake.nix.
{
  services.ibgpTunnel = {
    enable = true;
    # Prometheus exporters for BIRD and WireGuard, ports closed: open them on
    # the interface your Prometheus scrapes from, e.g.
    #   networking.firewall.interfaces.wg-ibgp.allowedTCPPorts = [ 9324 9586 ];
    monitoring.enable = true;
  };

  # sops-nix decrypts secrets/<host>.yaml with the host's SSH key: put its
  # recipient (`ibgp-tunnel age-recipient --ssh-key ssh_host_ed25519_key.pub`)
  # in .sops.yaml before `ibgp-tunnel keys`.
  sops.age.sshKeyPaths = [ "/etc/ssh/ssh_host_ed25519_key" ];
  # age only: no GnuPG key from the host's RSA key.
  sops.gnupg.sshKeyPaths = [ ];

  # The module's rules are nftables rules; it never switches the backend.
  networking.nftables.enable = true;

  # deploy-rs logs in as root over SSH: add your public key.
  services.openssh.enable = true;
  users.users.root.openssh.authorizedKeys.keys = [ ];
  networking.useDHCP = true;
  system.stateVersion = "25.11";
}

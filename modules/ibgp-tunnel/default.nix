# services.ibgpTunnel: iBGP over a dedicated WireGuard tunnel.
{
  imports = [
    ./options.nix
    ./plan.nix
    ./config.nix
    ./dn42.nix
    ./dn42-rtr.nix
    ./autopeer.nix
    ./bird-layout.nix
    ./monitoring
  ];
}

# services.ibgpTunnel: iBGP over a dedicated WireGuard tunnel.
{
  imports = [
    ./options.nix
    ./plan.nix
    ./config.nix
    ./bird-layout.nix
    ./monitoring
  ];
}

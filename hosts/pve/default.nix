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
}

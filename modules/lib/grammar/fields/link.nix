# The link fields of the table (../fields.nix): [links.<l>]. Plan only
# (optionPath null): each end's services.ibgpTunnel.links.<l> options are that
# end's view of the link (listenPort, ips, neighborAddress, peer, ...), which
# plan/host.nix derives from these; they are declared in
# modules/ibgp-tunnel/options.nix. The link rules (plan/rules/links.nix) check
# the values. Defaults are defaults.toml's.
let
  defaults = import ../../base/defaults.nix;
in
map (f: { optionPath = null; option = null; roles = [ "reflector" "client" ]; } // f) [
  {
    key = "reflector";
    type = "str";
    token = "name";
    example = "vps";
    description = "Name of the reflector host (a key of [hosts]): the end that listens.";
  }
  {
    key = "client";
    type = "str";
    token = "name";
    example = "pve";
    description = "Name of the client host (a key of [hosts]): the end that dials. Another reflector here joins the two reflectors.";
  }
  {
    key = "interface";
    type = "str";
    token = "interface";
    default = defaults.interface;
    description = "WireGuard interface name on both ends (at most 15 characters).";
  }
  {
    key = "port";
    type = "int";
    token = "port";
    default = defaults.port;
    description = "UDP listen port on both ends.";
  }
  {
    key = "ipv4";
    type = "str";
    token = "prefix4";
    example = "10.255.255.0/30";
    description = "The tunnel's IPv4 subnet, a /30 or /31, e.g. \"10.255.255.0/30\".";
  }
  {
    key = "ipv6";
    type = "str";
    token = "prefix6";
    example = "fdb7:1dec:4d21:ff::/64";
    description = "The tunnel's IPv6 subnet, a global /64 or /127 (e.g. \"fdb7:1dec:4d21:ff::/64\").";
  }
  {
    key = "reflector_ipv4";
    type = "str";
    token = "ipv4";
    description = "The reflector's IPv4 address inside ipv4.";
  }
  {
    key = "client_ipv4";
    type = "str";
    token = "ipv4";
    description = "The client's IPv4 address inside ipv4.";
  }
  {
    key = "reflector_ipv6";
    type = "str";
    token = "ipv6";
    description = "The reflector's IPv6 address inside ipv6.";
  }
  {
    key = "client_ipv6";
    type = "str";
    token = "ipv6";
    description = "The client's IPv6 address inside ipv6.";
  }
  {
    key = "mtu";
    type = "int";
    token = "dn42.mtu";
    nullable = true;
    check = true;
    example = 1380;
    description = "The tunnel's MTU on both ends (1280-9000). Left out, WireGuard's own (1420). Set it when the path between the hosts carries less than the tunnel's MTU plus WireGuard's 60 bytes (IPv4) or 80 (IPv6): a PPPoE or DS-Lite uplink, say; `ibgp-tunnel doctor` measures the path and names the value.";
  }
  {
    key = "preference";
    type = "int";
    token = "localPref";
    nullable = true;
    description = "The client's BGP local preference for this link's routes (higher wins; 100 when left out). A client with two reflectors gives each link its own, at least the number of its links (routes a reflector only has from another reflector rank below). Not on a link between two reflectors.";
  }
]

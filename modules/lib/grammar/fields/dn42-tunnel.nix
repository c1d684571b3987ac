# The DN42 tunnel fields of the table (../fields.nix): in the plan they sit in
# the peer's own table, [hosts.<h>.dn42_peers.<p>], and a public_key there means
# the module runs the tunnel; as options they are
# services.ibgpTunnel.dn42Peers.<p>.tunnel.<option> (optionPath).
#
# planOptional: required as an option (a tunnel has it), optional in the plan
#   (no public_key, no tunnel; the plan rules report a tunnel without
#   link_local).
# optionView: how the option differs from the plan key: preshared_key is a
#   flag in the plan and the PSK's file as an option (plan/dn42-peer.nix maps
#   one to the other).
# The order is the order of the plan rules' findings.
let
  dn42Defaults = import ../../base/dn42-defaults.nix;
  tunnelPath = [ "dn42Peers" "<name>" "tunnel" ];
in
map (f: f // { optionPath = tunnelPath; roles = [ "reflector" ]; }) [
  {
    key = "public_key";
    option = "publicKey";
    type = "str";
    token = "publicKey";
    planOptional = true;
    check = true;
    description = "The DN42 peer's WireGuard public key: the module then runs the tunnel on `interface` (default dn42-<peer>).";
  }
  {
    key = "endpoint";
    option = "endpoint";
    type = "str";
    token = "endpoint";
    nullable = true;
    check = true;
    example = "peer1.example.net:20038";
    description = "Where the peer listens, host:port; unset when the peer dials us.";
  }
  {
    key = "link_local";
    option = "linkLocal";
    type = "str";
    token = "dn42.linkLocalCidr";
    planOptional = true;
    check = true;
    example = "fe80::38/64";
    description = "Our link-local IPv6 address on the tunnel, with /64; the peer's is `neighbor`.";
  }
  {
    key = "ipv4";
    option = "ipv4";
    type = "str";
    token = "ipv4";
    nullable = true;
    check = true;
    example = "172.23.101.1";
    description = "Optional: our DN42 IPv4 address on the tunnel (a /32, point-to-point with peer_ipv4 / peerIpv4).";
  }
  {
    key = "peer_ipv4";
    option = "peerIpv4";
    type = "str";
    token = "ipv4";
    nullable = true;
    check = true;
    example = "172.20.42.1";
    description = "The peer's IPv4 /32 when ipv4 is set.";
  }
  {
    key = "listen_port";
    option = "listenPort";
    type = "int";
    token = "port";
    nullable = true;
    check = true;
    defaultText = "2 followed by the last four digits of the peer's ASN (20000 + asn % 10000)";
    description = "Our UDP port for this peer; unset: DN42's convention, 2 followed by the last four digits of the peer's ASN.";
  }
  {
    key = "mtu";
    option = "mtu";
    type = "int";
    token = "dn42.mtu";
    nullable = true;
    check = true;
    defaultText = toString dn42Defaults.mtu;
    description = "The tunnel's MTU (default ${toString dn42Defaults.mtu}).";
  }
  {
    key = "persistent_keepalive";
    option = "persistentKeepalive";
    type = "int";
    token = "keepalive";
    nullable = true;
    check = true;
    description = "WireGuard keepalive interval in seconds (for a peer behind NAT).";
  }
  {
    key = "preshared_key";
    option = "presharedKeyFile";
    type = "bool";
    default = false;
    description = "Use a PSK agreed with the peer (sops key wg_dn42/psk/<peer>, written by `ibgp-tunnel keys`).";
    optionView = {
      type = "str";
      token = "runtimePath";
      nullable = true;
      default = null;
      example = "/run/secrets/wg_dn42/psk/peer1";
      description = "File holding the PSK agreed with the peer (`ibgp-tunnel keys` writes `wg_dn42/psk/<peer>` to the sops file). null: no PSK.";
    };
  }
]

# A plan's [hosts.<h>.dn42_peers.<p>] and [hosts.<h>.dn42_roa] -> the host
# spec's dn42Peers.<p> and dn42 (the services.ibgpTunnel option shapes).
let
  dn42Defaults = import ../base/dn42-defaults.nix;
  fields = import ../grammar/fields.nix;

  # asn, neighbor, latency, ...: the dn42Peer fields of fields.nix.
  peerSpec = name: peer: fields.fromPlan "dn42Peer" peer // {
    # A public key means we run the peer's WireGuard tunnel.
    # publicKey, endpoint, linkLocal, ...: the dn42Tunnel fields of fields.nix;
    # preshared_key (a flag) names the PSK's file.
    tunnel =
      if peer ? public_key then
        fields.fromPlan "dn42Tunnel" peer
        // {
          presharedKeyFile = if peer.preshared_key or false then dn42Defaults.pskFile name else null;
        }
      else
        null;
  };
in
{
  __functor = _: peerSpec;

  host = host: {
    privateKeyFile = dn42Defaults.privateKeyFile;
    # enable, ipv4Url, ipv4File, ...: the dn42Roa fields of fields.nix.
    roa = fields.fromPlan "dn42Roa" (host.dn42_roa or { });
  };
}

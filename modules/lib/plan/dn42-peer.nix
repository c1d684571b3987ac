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

  host =
    host:
    let
      roa = host.dn42_roa or { };
    in
    {
      privateKeyFile = dn42Defaults.privateKeyFile;
      roa = dn42Defaults.roaFields // {
        enable = roa.enable or true;
        ipv4Url = roa.ipv4_url or dn42Defaults.roa_url_ipv4;
        ipv6Url = roa.ipv6_url or dn42Defaults.roa_url_ipv6;
        allowInsecureUrls = roa.allow_insecure_urls or false;
        interval = roa.interval or dn42Defaults.roa_interval;
      };
    };
}

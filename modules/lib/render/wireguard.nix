# host spec -> WireGuard interfaces, keyed by interface name, in the
# vocabulary of networking.wireguard.interfaces.
let
  inherit (builtins) attrValues listToAttrs;
  optionalMtu = link: if (link.mtu or null) == null then { } else { inherit (link) mtu; };
in
spec:
listToAttrs (
  map (link: {
    name = link.interface;
    # No mtu key when the link sets none: WireGuard's own default stays.
    value = optionalMtu link // {
      inherit (link) ips listenPort;
      inherit (spec) privateKeyFile;
      # WireGuard encrypts, BIRD routes: the /1 halves admit any source, and
      # no route is created from them.
      allowedIPsAsRoutes = false;
      peers = [
        {
          inherit (link.peer)
            name
            publicKey
            presharedKeyFile
            endpoint
            allowedIPs
            persistentKeepalive
            ;
        }
      ];
    };
  }) (attrValues spec.links)
)

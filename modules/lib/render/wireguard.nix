# host spec -> WireGuard interfaces, keyed by interface name, in the
# vocabulary of networking.wireguard.interfaces.
let
  inherit (builtins) attrValues listToAttrs;
in
spec:
listToAttrs (
  map (link: {
    name = link.interface;
    value = {
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

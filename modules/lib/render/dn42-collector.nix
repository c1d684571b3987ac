# The export-only session to DN42's Global Route Collector
# (https://wiki.dn42.dev/services/Route-Collector): multihop, one
# multiprotocol session, ADD-PATH tx so that every path we hold is sent,
# nothing imported. Sent: our own announcements of the DN42 peers' export
# sets (what DN42 peers get from us) and the routes learned from outside our
# AS (a non-empty AS path: the DN42 peers', or another reflector's) in the
# import sets, each with the communities it carries. Client routes outside
# those sets (a client's Cloudflare prefixes, say) are never sent.
let
  util = import ../base/util.nix;
  ip = import ../base/ip.nix;
  tokens = import ../grammar/tokens.nix;
  inherit (import ./blocks.nix) block blockSemi;
  inherit (import ../spec/dn42.nix) collectorOf collectorProtocol;
  inherit (util) optional;

  path = key: "dn42Collector.${key}";

  channel =
    h: spec: c: family:
    let
      exportSets = util.uniqueStrings (builtins.concatMap (peer: peer.exportSets) (builtins.attrValues spec.dn42Peers));
      own = h.matchSets spec.prefixSets family exportSets;
      learned = h.matchSets spec.prefixSets family spec.importSets;
    in
    blockSemi family (
      [
        "add paths tx;"
        "import none;"
      ]
      ++ (
        if own == null && learned == null then
          [ "export none;" ]
        else
          [
            (blockSemi "export filter" (
              [ "if net.len = 0 then reject;" ]
              ++ h.rejectTunnels spec family
              ++ optional (own != null) "if source = RTS_STATIC && (${own}) then accept;"
              ++ optional (learned != null) "if source = RTS_BGP && bgp_path.len > 0 && (${learned}) then accept;"
              ++ [ "reject;" ]
            ))
          ]
      )
      # IPv4 routes over an IPv6 session: next hops are IPv6 (RFC 8950).
      ++ optional (family == "ipv4" && ip.isIPv6 c.neighbor) "extended next hop on;"
    );
in
{
  bird =
    h: spec:
    let
      c = collectorOf spec;
    in
    optional (c != null) [
      "# DN42's Global Route Collector (wiki.dn42.dev/services/Route-Collector):"
      "# export only, several hops away, every path (ADD-PATH tx)."
      (block "protocol bgp ${h.prefixOf spec}${collectorProtocol}" (
        [
          "local as ${h.ownAs spec};"
          "neighbor ${tokens.address.emit (path "neighbor") c.neighbor} as ${toString (tokens.asn.emit (path "asn") c.asn)};"
        ]
        ++ h.routerIdOfOwn spec
        ++ [ "multihop;" ]
        ++ optional (c.sourceAddress != null) "source address ${tokens.address.emit (path "sourceAddress") c.sourceAddress};"
        ++ [
          (channel h spec c "ipv4")
          (channel h spec c "ipv6")
        ]
      ))
      ""
    ];
}

# The DN42 part of a host spec: defaults filled in for a hand-made or older
# spec, and what each peer's tunnel is (interface, port, MTU, crypto). The
# renderers and the spec's rules read these; nothing here emits text.
let
  inherit (builtins) attrNames filter mapAttrs;
  dn42Defaults = import ../base/dn42-defaults.nix;
  inherit (dn42Defaults) roaFields;
  # Fields a spec made before DN42 tunnels existed (or by hand) may leave out.
  fields = import ../grammar/fields.nix;
  tunnelFields = fields.specDefaults "dn42Tunnel";
  # Every dn42Peer field of the table at its default; the tunnel is not in it.
  peerFields = fields.specDefaults "dn42Peer" // {
    tunnel = null;
  };
  isAttrs = builtins.isAttrs;

  normalizePeer =
    peer:
    if !(isAttrs peer) then
      peer
    else
      let
        merged = peerFields // peer;
      in
      merged // { tunnel = if isAttrs merged.tunnel then tunnelFields // merged.tunnel else merged.tunnel; };

  # What the tunnel of a peer is, defaults filled in.
  listenPortOf = peer: if peer.tunnel.listenPort != null then peer.tunnel.listenPort else dn42Defaults.listenPort peer.asn;
  mtuOf = peer: if peer.tunnel.mtu != null then peer.tunnel.mtu else dn42Defaults.mtu;

  # DN42's crypto community: the option, else what the tunnel is.
  cryptoOf = peer: if peer.crypto != null then peer.crypto else if peer.tunnel != null then dn42Defaults.crypto_wireguard else null;

  managed = spec: filter (name: spec.dn42Peers.${name}.tunnel != null) (attrNames spec.dn42Peers);

  interfaceOf = name: peer: if peer.interface != null then peer.interface else "dn42-${name}";

  # Self-service peering (render/autopeer.nix): its record when enabled on a
  # reflector (a spec may leave autopeer out), else null; without the record
  # nothing else of the spec is read.
  autopeerOf = spec: let a = spec.autopeer or null; in if builtins.isAttrs a && a.enable or false == true && spec.role == "reflector" then a else null;
  # This reflector speaks to DN42: static peers, or peers that may come at
  # runtime (their sessions, in the include, use the ROA and community logic).
  dn42On = spec: spec.role == "reflector" && (spec.dn42Peers != { } || autopeerOf spec != null);

  roaOn = spec: dn42On spec && spec.dn42.roa.enable;

  # A ROA file over plain http:// can be rewritten by anyone on the path (it
  # decides which DN42 routes are imported): only with allowInsecureUrls.
  insecureUrl = url: builtins.match "http://.*" url != null;
  insecureRoaUrls =
    spec:
    let
      roa = spec.dn42.roa;
    in
    filter insecureUrl (if (roa.source or "files") == "rtr" then [ roa.jsonUrl ] else [ roa.ipv4Url roa.ipv6Url ]);

  # RPKI over RTR instead of the ROA files.
  rtrOn = spec: roaOn spec && spec.dn42.roa.source == "rtr";

  # DN42's route collector session: its record when enabled on a reflector
  # with DN42 peers (a hand-made spec may leave dn42Collector out), else null.
  collectorOf = spec: let c = spec.dn42Collector or null; in if spec.role == "reflector" && (spec.dn42Peers or { }) != { } && c != null && c.enable then c else null;
  # Its BIRD protocol: never a peer's session name (those are dn42_<peer>).
  collectorProtocol = "dn42collector";

  # The caches BIRD asks, in order: the plan's, else the local stayrtr.
  rtrCachesOf =
    spec:
    let
      roa = spec.dn42.roa;
    in
    if roa.rtrCaches != [ ] then roa.rtrCaches else [ { address = dn42Defaults.rtr_local_address; port = roa.rtrPort; } ];
in
{
  inherit
    roaFields
    normalizePeer
    listenPortOf
    mtuOf
    cryptoOf
    managed
    interfaceOf
    roaOn
    autopeerOf
    dn42On
    insecureUrl
    insecureRoaUrls
    rtrOn
    rtrCachesOf
    collectorOf
    collectorProtocol
    ;

  # A hand-made or older spec gets the DN42 fields' defaults.
  normalize =
    given:
    if !(isAttrs given) then
      given
    else
      given
      // {
        dn42 =
          let
            d = given.dn42 or { };
          in
          if !(isAttrs d) then
            d
          else
            {
              privateKeyFile = dn42Defaults.privateKeyFile;
            }
            // d
            // {
              roa = if isAttrs (d.roa or { }) then roaFields // (d.roa or { }) else d.roa;
            };
      }
      // (if isAttrs (given.dn42Peers or null) then { dn42Peers = mapAttrs (_: normalizePeer) given.dn42Peers; } else { });
}

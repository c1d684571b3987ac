# DN42 peering: per peer a WireGuard tunnel (link-local IPv6, optional IPv4
# /32 pair) and one multiprotocol eBGP session with ROA validation and DN42's
# link communities. The fixed BIRD logic lives in ../resources/*.conf; this
# file only generates what depends on the spec.
let
  inherit (builtins)
    attrNames
    attrValues
    concatStringsSep
    filter
    listToAttrs
    mapAttrs
    readFile
    replaceStrings
    ;
  util = import ../base/util.nix;
  ip = import ../base/ip.nix;
  defaults = import ../base/defaults.nix;
  dn42Defaults = import ../base/dn42-defaults.nix;
  inherit (import ./blocks.nix) block blockSemi;
  # The spec's DN42 facts (defaults filled in, names derived) and the names the
  # fixed BIRD logic defines: one place each, shared with the rules.
  dn42Spec = import ../spec/dn42.nix;
  symbols = import ../grammar/dn42-symbols.nix;
  inherit (dn42Spec) roaFields listenPortOf mtuOf cryptoOf managed interfaceOf roaOn insecureUrl rtrOn rtrCachesOf;
  inherit (symbols) fileProtocols rpkiProtocol;
  tokens = import ../grammar/tokens.nix;
  inherit (util) optional quote;

  identifier = name: replaceStrings [ "-" "." ] [ "_" "_" ] name;

  roaUrl =
    spec: url:
    if insecureUrl url && !spec.dn42.roa.allowInsecureUrls then
      throw "services.ibgpTunnel.dn42.roa: ${url} is plain http://: use https://, or set dn42.roa.allowInsecureUrls = true"
    else
      url;
  roaTable = spec: family: "${(import ../spec/layout.nix).prefixOf spec}dn42_roa${channelVersion family}";

  # --- bird.conf -------------------------------------------------------------

  # A resource's text; merged into a host's own BIRD config, its names (all
  # dn42_*) take our prefix like every other name we define.
  resource = h: spec: file: util.lines (replaceStrings [ "dn42_" ] [ "${h.prefixOf spec}dn42_" ] (readFile file));

  # A systemd time span of one unit (tokens.dn42.interval) in seconds.
  seconds =
    span:
    let
      m = builtins.match "([0-9]+)(s|min|h|d)" (tokens.dn42.interval.emit "dn42.roa.interval" span);
    in
    builtins.fromJSON (builtins.head m) * { s = 1; min = 60; h = 3600; d = 86400; }.${builtins.elemAt m 1};
  min = a: b: if a < b then a else b;

  # RPKI over RTR: one `protocol rpki` per cache, in the plan's order, the
  # first one's entries preferred; every cache fills the same ROA tables, so
  # while one answers the tables stay whole. BIRD drops a lost cache's entries
  # only after `expire` (48 h, BIRD's largest): losing every cache withdraws
  # nothing until then. `keep`: the cache's own timers do not override ours.
  rpkiProtocols = h: spec: let p = h.prefixOf spec; caches = rtrCachesOf spec; in [
    "# Filled over RTR from the caches below, in the plan's order (dn42.roa.rtrCaches)."
  ] ++ builtins.genList (i: let cache = builtins.elemAt caches i; field = "dn42.roa.rtrCaches.${toString i}"; in [
    (block "protocol rpki ${p}${rpkiProtocol (i + 1)}" [
      (blockSemi "roa4" [ "table ${p}dn42_roa4;" "preference ${toString (200 - i)};" ])
      (blockSemi "roa6" [ "table ${p}dn42_roa6;" "preference ${toString (200 - i)};" ])
      "remote ${tokens.address.emit "${field}.address" cache.address} port ${toString (tokens.dn42.rtrPort.emit "${field}.port" cache.port)};"
      "refresh keep ${toString (min 86400 (seconds spec.dn42.roa.interval))};"
      "retry keep ${toString dn42Defaults.rtr_retry};"
      "expire keep ${toString dn42Defaults.rtr_expire};"
    ])
    ""
  ]) (if builtins.length caches > symbols.maxRtrCaches then throw "ibgp-tunnel: dn42.roa.rtrCaches: more than ${toString symbols.maxRtrCaches} caches" else builtins.length caches);

  roaTables = h: spec: let p = h.prefixOf spec; in optional (roaOn spec) (if rtrOn spec then [
    "# DN42 ROA tables and the checks on them (modules/lib/resources/dn42-roa.conf)."
    (resource h spec ../resources/dn42-roa.conf)
    (rpkiProtocols h spec)
  ] else [
    "# DN42 ROA tables and the checks on them (modules/lib/resources/dn42-roa.conf)."
    (resource h spec ../resources/dn42-roa.conf)
    "# Filled from the files the dn42-roa timer keeps current; BIRD reloads"
    "# (birdc configure) only when one changed."
    (block "protocol static ${p}${builtins.elemAt fileProtocols 0}" [
      (blockSemi "roa4" [ "table ${p}dn42_roa4;" ])
      "include ${quote spec.dn42.roa.ipv4File};"
    ])
    ""
    (block "protocol static ${p}${builtins.elemAt fileProtocols 1}" [
      (blockSemi "roa6" [ "table ${p}dn42_roa6;" ])
      "include ${quote spec.dn42.roa.ipv6File};"
    ])
    ""
  ]);

  communityFunctions = h: spec: optional (dn42Spec.dn42On spec) [
    "# DN42 link communities (modules/lib/resources/dn42-communities.conf)."
    (resource h spec ../resources/dn42-communities.conf)
  ];

  limitKind = (import ../grammar/fields.nix).kind "dn42Peer" "importLimit";
  receiveKind = (import ../grammar/fields.nix).kind "dn42Peer" "receiveLimit";

  channelVersion = family: if family == "ipv4" then "4" else "6";

  importFilter =
    h: spec: name: peer: family:
    let
      condition = h.matchSets spec.prefixSets family spec.importSets;
      p = h.prefixOf spec;
    in
    if condition == null then
      [ "import none;" ]
    else
      [
        (blockSemi "import filter" (
          [ "if net.len = 0 then reject;" ]
          ++ h.rejectTunnels spec family
          ++ [ "if !(${condition}) then reject;" ]
          ++ optional (roaOn spec) "${p}dn42_roa_import_${family}();"
          ++ linkTags h spec name peer
          ++ [ "accept;" ]
        ))
      ]
      # The peer's own limit (fields.nix importLimit), else the sessions' (tuning).
      # No action at all is the seed's plain sessions (core.plainTuning): no limit.
      ++ (
        if peer.importLimit == null || spec.tuning.importLimitAction == null then
          h.importLimit spec condition
        else
          optional (condition != null) "import limit ${toString (limitKind.emit "dn42Peers.importLimit" peer.importLimit)} action ${spec.tuning.importLimitAction};"
      )
      # Counted before the import filter (fields.nix receiveLimit), same action.
      ++ optional (peer.receiveLimit or null != null && spec.tuning.importLimitAction != null)
        "receive limit ${toString (receiveKind.emit "dn42Peers.receiveLimit" peer.receiveLimit)} action ${spec.tuning.importLimitAction};";

  # This link's DN42 communities, each kept at the worst of the path (the
  # functions of ../resources/dn42-communities.conf): on what we import from the
  # peer and on what we send it, as DN42's community guide does both ways.
  # latency = "auto": the class is the BIRD constant the peer's measured file
  # defines (latencyDefines), not a number.
  linkTags =
    h: spec: name: peer:
    let
      tag = kind: value: optional (value != null) "${h.prefixOf spec}dn42_update_${kind}(${toString value});";
      latency = if peer.latency == "auto" then latencySymbol h spec name else latencyKind.emit "dn42Peers.${name}.latency" peer.latency;
    in
    tag "latency" (if peer.latency == null then null else latency) ++ tag "bandwidth" peer.bandwidth ++ tag "crypto" (cryptoOf peer);

  latencyKind = (import ../grammar/fields.nix).kind "dn42Peer" "latency";
  autoPeers = spec: filter (name: spec.dn42Peers.${name}.latency == "auto") (attrNames spec.dn42Peers);
  # Never a session's name (those are dn42_<peer>).
  latencySymbol = h: spec: name: "${h.prefixOf spec}dn42latency_${identifier name}";

  # Each measured class: a file holding `define <symbol> = <class>;`, written
  # by the latency timer (../resources/dn42-latency-update.sh).
  latencyDefines = h: spec: optional (autoPeers spec != [ ]) (
    [
      "# Measured DN42 latency classes (latency = \"auto\"): the dn42-latency timer"
      "# rewrites a peer's file (one define) only when its class changes."
    ]
    ++ map (name: "include ${quote (dn42Defaults.latencyFile name)};") (autoPeers spec)
    ++ [ "" ]
  );

  # Our own announcements (statics) of the peer's export sets, tagged with
  # this link's communities; a route already carrying worse values keeps them.
  exportFilter =
    h: spec: name: peer: family:
    let
      condition = h.matchSets spec.prefixSets family peer.exportSets;
      tags = linkTags h spec name peer;
    in
    if condition == null then
      [ "export none;" ]
    else if tags == [ ] then
      [ "export where source = RTS_STATIC && (${condition});" ]
    else
      [
        (blockSemi "export filter" (
          [
            "if source != RTS_STATIC then reject;"
            "if !(${condition}) then reject;"
          ]
          ++ tags
          ++ [ "accept;" ]
        ))
      ];

  channel =
    h: spec: name: peer: family:
    blockSemi family (
      importFilter h spec name peer family
      ++ exportFilter h spec name peer family
      # IPv4 routes over an IPv6 session: next hops are IPv6 (RFC 8950).
      ++ optional (family == "ipv4" && ip.isIPv6 peer.neighbor) "extended next hop on;"
      # RTR changes the ROA tables at any time: BIRD re-runs the import filter
      # on its own (rpki reload, on by default) only for a BGP channel that
      # keeps what the peer sent (RFC 9324's Adj-RIB-In, no route refresh).
      ++ optional (rtrOn spec) "import table on;"
    );

  session = h: spec: name: peer: [
    "# eBGP to the DN42 peer ${name}${
      if ip.isIPv6 peer.neighbor then ": one session over IPv6 carrying IPv4 and IPv6 routes" else ""
    }."
    (block "protocol bgp ${h.prefixOf spec}dn42_${identifier name}" (
      [
        "local as ${h.ownAs spec};"
        "neighbor ${peer.neighbor} as ${toString peer.asn};"
      ]
      ++ h.routerIdOfOwn spec
      ++ optional (peer.interface != null || peer.tunnel != null) "interface ${quote (interfaceOf name peer)};"
      # A TUN device may carry a second, generated link-local address: speak
      # from the one the peer was told (its `neighbor` for us).
      ++ optional (peer.tunnel != null && ip.isIPv6 peer.neighbor) "source address ${ip.addressOf peer.tunnel.linkLocal};"
      ++ h.gracefulRestartLines spec.tuning
      # After our restart (bird -R) exports wait for every neighbour's End-of-RIB:
      # dial the DN42 peer at once instead of after BIRD's 5 s connect delay.
      ++ optional (spec.tuning.connectDelayTime != null) "connect delay time ${toString spec.tuning.connectDelayTime};"
      ++ [
        (channel h spec name peer "ipv4")
        (channel h spec name peer "ipv6")
      ]
    ))
    ""
  ];

  # --- WireGuard ---------------------------------------------------------------

  tunnel = spec: name: let peer = spec.dn42Peers.${name}; t = peer.tunnel; in {
    name = interfaceOf name peer;
    value = {
      ips = [ t.linkLocal ];
      listenPort = listenPortOf peer;
      mtu = mtuOf peer;
      privateKeyFile = spec.dn42.privateKeyFile;
      # One interface per peer: WireGuard admits any source, BIRD routes.
      allowedIPsAsRoutes = false;
      # The optional IPv4 pair is point-to-point: our /32 with the peer's as
      # its peer address, so the peer is on-link without a shared subnet.
      postSetup = if t.ipv4 == null then "" else "ip -4 address add ${t.ipv4}/32 peer ${t.peerIpv4}/32 dev ${interfaceOf name peer}";
      peers = [
        {
          inherit name;
          inherit (t) publicKey presharedKeyFile endpoint persistentKeepalive;
          allowedIPs = defaults.allowed_ips;
        }
      ];
    };
  };
in
{
  inherit (dn42Spec) normalizePeer listenPortOf mtuOf cryptoOf interfaceOf roaFields insecureRoaUrls normalize;
  inherit (symbols) ownSymbols;
  # One peer's session and tunnel: render/autopeer.nix renders runtime peers with them.
  inherit session tunnel;

  # bird.conf lines: h holds bird.nix's helpers (matchSets, rejectTunnels,
  # importLimit, gracefulRestartLines, and the merged layout's prefixOf, ownAs,
  # routerIdOfOwn).
  bird =
    h: spec:
    if spec.role != "reflector" then
      [ ]
    else
      # Every ROA setting is checked (forced through its grammar) whichever
      # source is on: a bad value left for later is refused now.
      builtins.deepSeq spec.dn42.roa [
        (roaTables h spec)
        (communityFunctions h spec)
        ""
        (latencyDefines h spec)
        (util.mapAttrsToList (session h spec) spec.dn42Peers)
        # Self-service peers' sessions (render/autopeer.nix), written at runtime.
        (optional (dn42Spec.autopeerOf spec != null) [ "include ${quote defaults.autopeer.bird_include};" "" ])
        ((import ./dn42-collector.nix).bird h spec)
      ];

  # networking.wireguard.interfaces entries for the peers whose tunnel we manage.
  wireguard = spec: if spec.role != "reflector" then { } else listToAttrs (map (tunnel spec) (managed spec));

  # Our WireGuard ports of the DN42 tunnels (peers dial them).
  listenPorts = spec: if spec.role != "reflector" then [ ] else map (name: listenPortOf spec.dn42Peers.${name}) (managed spec);

  # The DN42 tunnel interfaces (BGP on TCP 179 through them).
  interfaces = spec: if spec.role != "reflector" then [ ] else map (name: interfaceOf name spec.dn42Peers.${name}) (attrNames spec.dn42Peers);

  # Autopeer tunnels use the DN42 private key too.
  secretNames = spec: if managed spec == [ ] && dn42Spec.autopeerOf spec == null then null else {
    privateKey = dn42Defaults.secret_private_key;
    psk = listToAttrs (
      map (name: {
        inherit name;
        value = dn42Defaults.pskSecretName name;
      }) (filter (name: spec.dn42Peers.${name}.tunnel.presharedKeyFile != null) (managed spec))
    );
  };

  # What the latency unit needs (null without a latency = "auto" peer).
  latency =
    spec:
    let
      h.prefixOf = (import ../spec/layout.nix).prefixOf;
      peers = map (name: let peer = spec.dn42Peers.${name}; in {
        inherit name;
        address = peer.neighbor;
        interface = interfaceOf name peer;
        file = dn42Defaults.latencyFile name;
        symbol = latencySymbol h spec name;
      }) (autoPeers spec);
    in
    if spec.role != "reflector" || peers == [ ] then
      null
    else
      {
        interval = dn42Defaults.latency_interval;
        inherit peers;
        arguments = [ "--probes" (toString dn42Defaults.latency_probes) ] ++ builtins.concatMap (p: [ p.name p.address p.interface p.file p.symbol ]) peers;
        files = map (p: p.file) peers;
        # Before the first measurement (tmpfiles writes it into a missing file).
        initial = map (p: { inherit (p) file; text = "define ${p.symbol} = ${toString dn42Defaults.latency_initial};"; }) peers;
        script = import ./resource-script.nix "dn42-latency-update.sh" [ "bird-config-loads.sh" ];
        # services.bird.preCheckConfig: each include pointed at a stub with
        # the initial class (the build sandbox has no measured file).
        preCheckConfig = concatStringsSep "\n" (
          map (p: "echo 'define ${p.symbol} = ${toString dn42Defaults.latency_initial};' > dn42latency_${identifier p.name}.conf") peers
          ++ [ "sed -i ${concatStringsSep " " (map (p: "-e 's|include \"${p.file}\";|include \"dn42latency_${identifier p.name}.conf\";|'") peers)} bird.conf" ]
        );
      };

  # What the RTR units need (null unless source = "rtr"): the JSON refresh
  # (the script's arguments, as dn42-rtr-update.sh takes them) and the local
  # stayrtr serving its last good file.
  rtr =
    spec:
    if !(rtrOn spec) then
      null
    else
      let
        roa = spec.dn42.roa;
      in
      {
        inherit (roa) interval jsonFile;
        arguments = optional roa.allowInsecureUrls "--allow-http" ++ [
          (roaUrl spec (tokens.dn42.url.emit "dn42.roa.jsonUrl" roa.jsonUrl))
          (tokens.runtimePath.emit "dn42.roa.jsonFile" roa.jsonFile)
        ];
        maxBytes = dn42Defaults.roa_max_bytes;
        script = readFile ../resources/dn42-rtr-update.sh;
        refreshSeconds = seconds roa.interval;
        bind = "${dn42Defaults.rtr_local_address}:${toString (tokens.dn42.rtrListenPort.emit "dn42.roa.rtrPort" roa.rtrPort)}";
      };

  # What the ROA unit needs (null without ROA files).
  roa =
    spec:
    if !(roaOn spec) || rtrOn spec then
      null
    else
      {
        inherit (spec.dn42.roa) interval;
        # [--allow-http] then family url file table, as the update script
        # takes them (the tables carry the merged layout's prefix).
        arguments =
          optional spec.dn42.roa.allowInsecureUrls "--allow-http"
          ++ builtins.concatMap (family: [
            family
            (roaUrl spec spec.dn42.roa."${family}Url")
            spec.dn42.roa."${family}File"
            (roaTable spec family)
          ]) [ "ipv4" "ipv6" ];
        files = [ spec.dn42.roa.ipv4File spec.dn42.roa.ipv6File ];
        # The script's ROA_MAX_BYTES: a larger download is refused.
        maxBytes = dn42Defaults.roa_max_bytes;
        script = import ./resource-script.nix "dn42-roa-update.sh" [ "bird-config-loads.sh" ];
        # services.bird.preCheckConfig: the build sandbox has no downloaded
        # file, so the check parses bird.conf with each include pointed at an
        # empty stub (sed -i replaces the symlink with a copy).
        preCheckConfig = concatStringsSep "\n" [
          ": > dn42_roa4.conf"
          ": > dn42_roa6.conf"
          "sed -i -e 's|include \"${spec.dn42.roa.ipv4File}\";|include \"dn42_roa4.conf\";|' -e 's|include \"${spec.dn42.roa.ipv6File}\";|include \"dn42_roa6.conf\";|' bird.conf"
        ];
      };
}

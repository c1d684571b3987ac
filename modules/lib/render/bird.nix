# host spec -> complete bird.conf text (BIRD 2.0.x and 3.x syntax).
let
  inherit (builtins) attrNames attrValues concatStringsSep concatMap filter replaceStrings;
  util = import ../base/util.nix;
  ip = import ../base/ip.nix;
  inherit (import ./blocks.nix) block blockSemi render;
  inherit (util) optional quote;
  reflectors = import ./reflectors.nix;

  identifier = name: replaceStrings [ "-" "." ] [ "_" "_" ] name;

  inherit (import ../spec/layout.nix) layout merged prefixOf;
  # Standalone, `protocol direct` and `protocol bfd` stay unnamed as they were.
  protocolHead = spec: type: name: "protocol ${type}${if merged spec then " ${prefixOf spec}${name}" else ""}";
  ownAs = spec: "${util.toUpper (prefixOf spec)}OWNAS";

  # Merged, the prefix sets are renamed (dn42 -> ibgpt_dn42, defined as
  # IBGPT_DN42_NET_v4) before anything refers to them.
  namespaced =
    spec:
    let
      rename = name: "${prefixOf spec}${name}";
      renameAll = map rename;
    in
    if !(merged spec) then
      spec
    else
      spec
      // {
        prefixSets = builtins.listToAttrs (
          util.mapAttrsToList (name: set: {
            name = rename name;
            value = set;
          }) spec.prefixSets
        );
        importSets = renameAll spec.importSets;
        kernelExportSets = renameAll spec.kernelExportSets;
        dn42Peers = builtins.mapAttrs (_: peer: peer // { exportSets = renameAll peer.exportSets; }) spec.dn42Peers;
      };

  setName = family: name: "${util.toUpper (identifier name)}_NET_${if family == "ipv4" then "v4" else "v6"}";

  channelVersion = family: if family == "ipv4" then "4" else "6";

  # BIRD rejects an empty set literal, so an empty family gets no define and
  # every test against it is left out.
  prefixSetDefines =
    prefixSets:
    concatMap (
      name:
      concatMap (
        family:
        let
          entries = prefixSets.${name}.${family};
        in
        optional (entries != [ ]) "define ${setName family name} = [ ${concatStringsSep ", " entries} ];"
      ) [ "ipv4" "ipv6" ]
    ) (attrNames prefixSets);

  # "net ~ A_NET_v4 || net ~ B_NET_v4", or null when no named set has entries.
  matchSets =
    prefixSets: family: names:
    let
      usable = filter (name: prefixSets.${name}.${family} != [ ]) names;
    in
    if usable == [ ] then null else concatStringsSep " || " (map (name: "net ~ ${setName family name}") usable);

  # The tunnels' own subnets and anything inside them: a learned route there
  # would replace the connected one (fd00::/8{44,64} matches a ULA /64 link).
  tunnelSetName = spec: family: "${util.toUpper (prefixOf spec)}TUNNEL_NET_${if family == "ipv4" then "v4" else "v6"}";

  # Read from spec.tunnels (computed once below): every session asks.
  tunnelSubnets = spec: family: spec.tunnels.${family};

  tunnelDefines = spec: concatMap (
    family:
    let
      subnets = tunnelSubnets spec family;
    in
    optional (subnets != [ ]) "define ${tunnelSetName spec family} = [ ${concatStringsSep ", " (map (cidr: "${ip.networkOf cidr}+") subnets)} ];"
  ) [ "ipv4" "ipv6" ];

  rejectTunnels = spec: family: optional (tunnelSubnets spec family != [ ]) "if net ~ ${tunnelSetName spec family} then reject;";

  matchPrefixes = prefixes: if prefixes == [ ] then null else "net ~ [ ${concatStringsSep ", " prefixes} ]";

  # `keyword filter { ... };` accepting what matches, never a default route;
  # `keyword none;` when nothing may match.
  acceptFilter =
    keyword: condition: extraRejects:
    if condition == null then
      [ "${keyword} none;" ]
    else
      [
        (blockSemi "${keyword} filter" (
          [ "if net.len = 0 then reject;" ] ++ extraRejects ++ [ "if ${condition} then accept;" "reject;" ]
        ))
      ];

  ownAddress =
    family: link:
    ip.addressOf (
      util.firstOr (throw "ibgp-tunnel: link ${link.interface} has no ${family} address in ips") (
        filter (cidr: ip.familyOf (ip.addressOf cidr) == family) link.ips
      )
    );

  device = block "protocol device" [ "scan time 10;" ];

  # Merged, our sessions keep the plan's router id whatever the host's
  # global one is (a protocol option in BIRD 2 and 3).
  routerIdOfOwn = spec: optional (merged spec) "router id ${spec.routerId};";

  # A reflector without clients yet (a plan warning, not an error) has no
  # tunnel to learn, and BIRD refuses an empty interface list.
  direct = spec: optional (spec.links != { }) [
    "# Learn the tunnel subnets so iBGP next hops resolve, for IPv4 and IPv6."
    (block (protocolHead spec "direct" "direct") [
      "ipv4;"
      "ipv6;"
      "interface ${concatStringsSep ", " (map (link: quote link.interface) (attrValues spec.links))};"
    ])
  ];

  kernelExportRejects = [
    "if dest != RTD_UNICAST then reject;"
    "if source = RTS_DEVICE then reject;"
  ];

  # Merged without kernel protocols of our own: the host's kernel protocols
  # call this, e.g. `export where ibgpt_kernel_export_v4() || source = RTS_OSPF;`.
  kernelExportFunction =
    spec: family:
    let
      condition = matchSets spec.prefixSets family spec.kernelExportSets;
      asReturn = line: replaceStrings [ "then reject;" ] [ "then return false;" ] line;
    in
    [
      (block "function ${prefixOf spec}kernel_export_v${channelVersion family}()" (
        if condition == null then
          [ "return false;" ]
        else
          [ "if net.len = 0 then return false;" ]
          ++ map asReturn kernelExportRejects
          ++ [
            "if ${condition} then return true;"
            "return false;"
          ]
      ))
      ""
    ];

  kernelPart =
    spec: family:
    if (layout spec).kernelProtocols then kernel spec family ++ [ "" ] else kernelExportFunction spec family;

  kernel = spec: family: [
    (block "protocol kernel ${prefixOf spec}kernel${channelVersion family}" ([
      "# BIRD 3 (3.1.8, 3.2.3) may leave a route withdrawn and announced again"
      "# between two scans out of the kernel until the next scan (a route id it"
      "# recycles still counts as seen): scan every second to bound that gap."
      "# docs/upstream/bird3-krt-seen-map/"
      "scan time 1;"
    ]
    ++ optional spec.tuning.gracefulRestart [
      "# After a restart with -R, keep the routes in the kernel (and forwarding)"
      "# until the sessions have recovered, instead of flushing them at start."
      "graceful restart on;"
    ]
    ++ [
      (blockSemi family (
        [
          "import none;"
          "# Unreachable routes (statics, or iBGP routes without a usable IPv6 next"
          "# hop) would black-hole traffic; connected subnets such as the tunnel's"
          "# own (fd00::/8{44,64} matches it) are in the kernel already."
        ]
        ++ acceptFilter "export" (matchSets spec.prefixSets family spec.kernelExportSets) kernelExportRejects
      ))
    ]))
  ];

  static =
    spec: family:
    let
      prefixes = spec.announce.${family};
    in
    optional (prefixes != [ ]) [
      "# Announced over iBGP. Unreachable here, so this host's own traffic keeps"
      "# its default route and the kernel export skips them."
      (block "protocol static ${prefixOf spec}announce${channelVersion family}" (
        [ "${family};" ] ++ map (prefix: "route ${prefix} unreachable;") prefixes
      ))
      ""
    ];

  # `import limit` only where something can be imported at all.
  importLimit =
    spec: condition:
    optional (condition != null && spec.tuning.importLimit != null)
      "import limit ${toString spec.tuning.importLimit} action ${spec.tuning.importLimitAction};";

  # Session options of the iBGP sessions; null timers keep BIRD's defaults.
  sessionTuning =
    spec: link:
    let
      t = spec.tuning;
      timer = name: value: optional (value != null) "${name} ${toString value};";
    in
    bfdLine spec link
    ++ gracefulRestartLines t
    ++ timer "connect delay time" t.connectDelayTime
    ++ timer "connect retry time" t.connectRetryTime
    ++ optional (t.errorWaitTime != null) "error wait time ${concatStringsSep ", " (map toString t.errorWaitTime)};"
    ++ timer "hold time" t.holdTime
    ++ timer "keepalive time" t.keepaliveTime;

  # BIRD 2 never signals AdminDown, so a restarting neighbour's BFD session just
  # times out; plain `bfd on` then resets the session and flushes the routes that
  # graceful restart was meant to keep. `bfd graceful` makes BFD down start a
  # graceful restart instead: routes stay for the neighbour's restart time.
  bfdLine =
    spec: link:
    let
      t = spec.tuning;
    in
    optional t.bfd (
      if reflectors.hasAlternative spec link then
        [
          "# Another reflector carries the same routes: on BFD down drop this"
          "# one's at once instead of keeping them for the restart time."
          "bfd on;"
        ]
      else if t.gracefulRestart then
        [
          "# BFD down: keep routes for the restart time (a restarting BIRD looks"
          "# the same as a dead tunnel), then drop them."
          "bfd graceful;"
        ]
      else
        "bfd on;"
    );

  gracefulRestartLines =
    t:
    optional t.gracefulRestart (
      [ "graceful restart on;" ]
      ++ optional (t.gracefulRestartTime != null) "graceful restart time ${toString t.gracefulRestartTime};"
    )
    ++ optional (t.gracefulRestart && t.longLivedStaleTime != null && t.longLivedStaleTime > 0) [
      "long lived graceful restart on;"
      "long lived stale time ${toString t.longLivedStaleTime};"
    ];

  # iBGP sessions are multihop, so BFD takes its timers from the multihop block.
  bfd =
    spec:
    optional (spec.tuning.bfd && spec.links != { }) [
      "# Notices a dead tunnel in ${toString (spec.tuning.bfdIntervalMs * spec.tuning.bfdMultiplier)} ms; BGP alone waits for the hold timer."
      (block (protocolHead spec "bfd" "bfd") [
        (blockSemi "multihop" [
          "interval ${toString spec.tuning.bfdIntervalMs} ms;"
          "multiplier ${toString spec.tuning.bfdMultiplier};"
        ])
      ])
      ""
    ];

  ibgpChannel =
    spec: link: family:
    let
      isReflector = spec.role == "reflector";
      importCondition =
        if reflectors.isReflectorPeer spec link then
          reflectors.either (matchPrefixes link.importPrefixes.${family}) (matchSets spec.prefixSets family spec.importSets)
        else if isReflector then
          matchPrefixes link.importPrefixes.${family}
        else
          matchSets spec.prefixSets family spec.importSets;
      export =
        if isReflector then
          "where source = RTS_BGP || source = RTS_STATIC"
        else if spec.announce.${family} == [ ] then
          "none"
        else
          "where source = RTS_STATIC";
    in
    blockSemi family (
      acceptFilter "import" importCondition (
        rejectTunnels spec family ++ reflectors.preferenceLines (ownAs spec) spec link ++ reflectors.peerImportLines (ownAs spec) spec link
      )
      ++ importLimit spec importCondition
      ++ [ "export ${export};" ]
      ++ optional isReflector "next hop self;"
      ++ optional (family == "ipv6") [
        "# The session runs over IPv4: name the IPv6 next hop, or BIRD"
        "# withdraws every IPv6 route (seed pitfall 4)."
        "next hop address ${ownAddress "ipv6" link};"
      ]
    );

  ibgp = spec: link: [
    "# iBGP over ${link.interface}: one IPv4 session carrying IPv4 and IPv6 routes${
      if reflectors.isReflectorPeer spec link then ", to the reflector ${link.peer.name} (a plain iBGP peer, not a client)" else ""
    }."
    (block "protocol bgp ${prefixOf spec}ibgp_${identifier link.peer.name}" (
      [
        "local ${ownAddress "ipv4" link} as ${ownAs spec};"
        "neighbor ${link.neighborAddress} as ${ownAs spec};"
      ]
      ++ routerIdOfOwn spec
      ++ optional (spec.role == "reflector" && !(reflectors.isReflectorPeer spec link)) "rr client;"
      ++ reflectors.clusterLines spec link
      ++ sessionTuning spec link
      ++ [
        (ibgpChannel spec link "ipv4")
        (ibgpChannel spec link "ipv6")
      ]
    ))
    ""
  ];

  # The spec as every part of bird.conf reads it: its tunnel subnets by
  # family, and merged, the prefix sets renamed.
  prepared =
    given:
    namespaced (
      given
      // {
        tunnels = builtins.listToAttrs (
          map (family: {
            name = family;
            value = filter (cidr: ip.familyOf (ip.addressOf cidr) == family) (concatMap (link: link.ips) (attrValues given.links));
          }) [ "ipv4" "ipv6" ]
        );
      }
    );

  helpers = {
    inherit matchSets rejectTunnels importLimit gracefulRestartLines prefixOf ownAs routerIdOfOwn;
  };

  birdConfig =
    given:
    let
      s = prepared given;
      standalone = (layout given).standalone;
    in
render [
  "# Generated by ibgp-tunnel for this ${s.role}. Change the plan or"
  "# services.ibgpTunnel instead of editing this file."
  ""
  (optional standalone [
    "router id ${s.routerId};"
    ""
  ])
  (optional (standalone && s.tuning.gracefulRestart) [
    "# After a restart with -R, wait at most this long for neighbours' End-of-RIB."
    "graceful restart wait ${toString s.tuning.gracefulRestartWait};"
    ""
  ])
  "define ${ownAs s} = ${toString s.asn};"
  (prefixSetDefines s.prefixSets)
  (tunnelDefines s)
  ""
  (optional standalone [
    device
    ""
  ])
  (direct s)
  ""
  (bfd s)
  (kernelPart s "ipv4")
  (kernelPart s "ipv6")
  (static s "ipv4")
  (static s "ipv6")
  (map (ibgp s) (attrValues s.links))
  ((import ./dn42.nix).bird helpers s)
];
in
{
  # spec -> the whole bird.conf
  __functor = _: birdConfig;

  # spec -> names of its DN42 peers -> their sessions alone, exactly as
  # bird.conf writes them (render/autopeer.nix's include).
  dn42Sessions = given: names: let s = prepared given; in render (map (name: (import ./dn42.nix).session helpers s name s.dn42Peers.${name}) names);
}

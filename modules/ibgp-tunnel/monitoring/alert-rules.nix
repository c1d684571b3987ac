# One host's Prometheus alerting rules (a rule group, builtins only), over the
# metrics nixpkgs' exporters really export: bird_exporter (czerwonk, -format.new)
# bird_protocol_up, bird_protocol_prefix_{import,export}_count,
# bird_bfd_session_up (`protocol rpki` too: proto="RPKI", state the RTR
# session's, e.g. "Established" up, "Transport-Error" down; seen with 1.4.1
# against BIRD 3.1.8 and 2.17.6); prometheus_wireguard_exporter (MindFlavor)
# wireguard_latest_handshake_seconds. `instance` is a regex for the instance
# label Prometheus gives this host's targets.
{
  hostName,
  instance,
  spec,
  expectedKernelRoutes,
}:
let
  inherit (builtins) attrValues concatStringsSep filter map replaceStrings;
  core = import ../../lib;
  util = core.util;

  # Linear, and sorted: names as attribute names.
  uniqueStrings = list: builtins.attrNames (builtins.listToAttrs (map (name: { inherit name; value = null; }) list));

  identifier = name: replaceStrings [ "-" "." ] [ "_" "_" ] name;
  prefix = if (spec.bird or { }).standalone or true then "" else "ibgpt_";
  links = attrValues spec.links;
  ibgpNames = map (link: "${prefix}ibgp_${identifier link.peer.name}") links;
  collector = (import ../../lib).dn42Collector;
  # The DN42 sessions and DN42's route collector (multihop, export only).
  dn42Names =
    map (name: "${prefix}dn42_${identifier name}") (builtins.attrNames spec.dn42Peers)
    ++ util.optional (collector.collectorOf spec != null) "${prefix}${collector.collectorProtocol}";
  # Self-service peerings (issue 24) come and go at runtime: their sessions
  # are matched by the core's naming (render/autopeer.nix: dn42_ap<asn>, plus
  # _<k> when an ASN may have several), never listed. A static peer whose
  # name happens to fit is excluded (the core refuses an autopeer taking a
  # static peer's name), so it keeps only its own rules.
  autopeerOn = core.dn42Autopeer.autopeerOf spec != null;
  autopeerRegex = "${prefix}dn42_${core.autopeerPaths.name_prefix}[0-9]+(_[0-9]+)?";
  autopeerMatchers =
    [ ''name=~"${autopeerRegex}"'' ]
    ++ util.optional (dn42StaticNames != [ ]) ''name!~"${anyOf dn42StaticNames}"'';
  dn42StaticNames = map (name: "${prefix}dn42_${identifier name}") (builtins.attrNames (spec.dn42Peers or { }));
  # A regex alternative of literal names (dots in addresses and VLAN
  # interfaces escaped; PromQL strings take the backslash doubled).
  anyOf = names: concatStringsSep "|" (map (replaceStrings [ "." ] [ "\\\\." ]) names);
  # PromQL label matchers; the host's instance on every series.
  on = matchers: "{${concatStringsSep "," ([ ''instance=~"${instance}"'' ] ++ matchers)}}";
  labels = severity: {
    inherit severity;
    ibgp_tunnel_host = hostName;
  };

  sessionDown = util.optional (ibgpNames != [ ]) {
    alert = "IbgpTunnelSessionDown";
    expr = "bird_protocol_up${on [ ''proto="BGP"'' ''name=~"${anyOf ibgpNames}"'' ]} == 0";
    for = "1m";
    labels = labels "critical";
    annotations.summary = "iBGP session {{ $labels.name }} (IPv{{ $labels.ip_version }}) on ${hostName} is down: {{ $labels.state }}";
  };

  dn42Down = util.optional (dn42Names != [ ] || autopeerOn) {
    alert = "IbgpTunnelDn42SessionDown";
    expr = "bird_protocol_up${on [ ''proto="BGP"'' ''name=~"${concatStringsSep "|" (util.optional (dn42Names != [ ]) (anyOf dn42Names) ++ util.optional autopeerOn autopeerRegex)}"'' ]} == 0";
    for = "5m";
    labels = labels "warning";
    annotations.summary = "DN42 session {{ $labels.name }} on ${hostName} is down: {{ $labels.state }}";
  };

  bfdDown = util.optional (spec.tuning.bfd && links != [ ]) {
    alert = "IbgpTunnelBfdSessionDown";
    expr = "bird_bfd_session_up${on [ ''ip=~"${anyOf (map (link: link.neighborAddress) links)}"'' ]} == 0";
    for = "1m";
    labels = labels "critical";
    annotations.summary = "BFD session to {{ $labels.ip }} on ${hostName} is down: the tunnel is dead or the other end's BIRD is";
  };

  # WireGuard renews a handshake every 2 minutes while traffic flows, and BGP
  # keepalives (and BFD) flow all the time: 3 minutes means the tunnel is gone.
  handshakeStale = util.optional (links != [ ]) {
    alert = "IbgpTunnelHandshakeStale";
    expr = "time() - wireguard_latest_handshake_seconds${on [ ''interface=~"${anyOf (uniqueStrings (map (link: link.interface) links))}"'' ]} > 180";
    labels = labels "critical";
    annotations.summary = "WireGuard peer {{ $labels.public_key }} on {{ $labels.interface }} (${hostName}): last handshake {{ $value | humanizeDuration }} ago";
  };

  kernelRoutes =
    family:
    let
      version = if family == "ipv4" then "4" else "6";
      expected = expectedKernelRoutes.${family};
    in
    util.optional (expected > 0) {
      alert = "IbgpTunnelKernelRoutesMissing";
      expr = "sum(bird_protocol_prefix_export_count${on [ ''proto="Kernel"'' ''ip_version="${version}"'' ]}) < ${toString expected}";
      for = "5m";
      labels = labels "warning" // {
        ip_version = version;
      };
      annotations.summary = "${hostName} has {{ $value }} IPv${version} routes from BIRD in its kernel; the plan gives it at least ${toString expected}";
    };

  importLimit = util.optional (spec.tuning.importLimit != null && ibgpNames != [ ]) {
    alert = "IbgpTunnelImportLimitReached";
    expr = "bird_protocol_prefix_import_count${on [ ''proto="BGP"'' ''name=~"${anyOf ibgpNames}"'' ]} >= ${toString spec.tuning.importLimit}";
    labels = labels "critical";
    annotations.summary = "{{ $labels.name }} (IPv{{ $labels.ip_version }}) on ${hostName} reached its import limit of ${toString spec.tuning.importLimit} routes (action ${spec.tuning.importLimitAction}): routes beyond it are not taken";
  };

  # --- DN42 peers' own limits (issue 22 item 4) --------------------------------
  # bird_exporter does not export BIRD's limit state (its parser reads no
  # "Import limit ... [HIT]"), so a limit reads as the counts reaching it: one
  # rule per limit value over the sessions that have it (render/dn42.nix: the
  # peer's importLimit, else tuning's; receiveLimit only where set).
  dn42Peers = spec.dn42Peers or { };
  peerNames = builtins.attrNames dn42Peers;
  dn42Session = name: "${prefix}dn42_${identifier name}";
  action = spec.tuning.importLimitAction or null;
  importOf = name: if dn42Peers.${name}.importLimit or null != null && action != null then dn42Peers.${name}.importLimit else spec.tuning.importLimit or null;
  receiveOf = name: if action == null then null else dn42Peers.${name}.receiveLimit or null;
  # limit value -> the sessions having it, as [ { limit; names; } ].
  byLimit =
    limitOf:
    let
      limited = filter (name: limitOf name != null) peerNames;
      values = uniqueStrings (map (name: toString (limitOf name)) limited);
    in
    map (value: { limit = value; names = map dn42Session (filter (name: toString (limitOf name) == value) limited); }) values;
  fix = kind: "raise ${kind} of that peer ([hosts.${hostName}.dn42_peers.<peer>] in the plan) if its routes are legitimate, else find out why it sends so many";

  dn42ImportLimit = map (group: {
    alert = "IbgpTunnelImportLimitReached";
    expr = "bird_protocol_prefix_import_count${on [ ''proto="BGP"'' ''name=~"${anyOf group.names}"'' ]} >= ${group.limit}";
    labels = labels "critical";
    annotations.summary = "DN42 session {{ $labels.name }} (IPv{{ $labels.ip_version }}) on ${hostName} reached its import limit of ${group.limit} routes (action ${toString action}): routes beyond it are not taken; ${fix "import_limit"}";
  }) (byLimit importOf);

  # Autopeers have no limit of their own: the sessions' (tuning), as
  # render/dn42.nix gives a peer without importLimit.
  autopeerImportLimit = util.optional (autopeerOn && spec.tuning.importLimit or null != null) {
    alert = "IbgpTunnelImportLimitReached";
    expr = "bird_protocol_prefix_import_count${on ([ ''proto="BGP"'' ] ++ autopeerMatchers)} >= ${toString spec.tuning.importLimit}";
    labels = labels "critical";
    annotations.summary = "Self-service DN42 session {{ $labels.name }} (IPv{{ $labels.ip_version }}) on ${hostName} reached its import limit of ${toString spec.tuning.importLimit} routes (action ${toString action}): routes beyond it are not taken; find out why that peer sends so many (`ibgp-tunnel dn42 autopeer show`), remove its peering if it will not stop, or raise tuning.import_limit for every session";
  };

  # What BIRD counts for a receive limit: the routes it keeps, accepted or
  # kept filtered (bird_protocol_prefix_filter_count).
  dn42ReceiveLimit = map (group: let m = on [ ''proto="BGP"'' ''name=~"${anyOf group.names}"'' ]; in {
    alert = "IbgpTunnelReceiveLimitReached";
    expr = "bird_protocol_prefix_import_count${m} + bird_protocol_prefix_filter_count${m} >= ${group.limit}";
    labels = labels "critical";
    annotations.summary = "DN42 session {{ $labels.name }} (IPv{{ $labels.ip_version }}) on ${hostName} reached its receive limit of ${group.limit} routes (action ${toString action}): routes beyond it are not kept; ${fix "receive_limit"}";
  }) (byLimit receiveOf);

  # RPKI over RTR: BIRD keeps the last ROA table while no cache answers (for
  # rtr_expire), so nothing is withdrawn and nothing else shows it: the
  # table just stops following the registry. One cache of several down is
  # harmless (the others fill the same tables); all of them is the alert.
  rtrNames = map (i: "${prefix}${core.dn42Rtr.rpkiProtocol (i + 1)}") (
    builtins.genList (i: i) (builtins.length (core.dn42Rtr.rtrCachesOf spec))
  );
  rtrCachesDown = util.optional (core.dn42Rtr.rtrOn spec) {
    alert = "IbgpTunnelRtrCachesDown";
    expr = "max(bird_protocol_up${on [ ''proto="RPKI"'' ''name=~"${anyOf rtrNames}"'' ]}) == 0";
    for = "5m";
    labels = labels "warning";
    annotations.summary = "No RTR cache answers BIRD on ${hostName} (${concatStringsSep ", " rtrNames}): BIRD keeps the last ROA table (nothing withdrawn) but it no longer follows DN42's registry, and it expires ${toString (core.dn42Defaults.rtr_expire / 3600)} h after the last cache was lost";
  };
in
{
  name = "ibgp-tunnel-${hostName}";
  rules = sessionDown ++ dn42Down ++ bfdDown ++ handshakeStale ++ kernelRoutes "ipv4" ++ kernelRoutes "ipv6" ++ importLimit ++ dn42ImportLimit ++ autopeerImportLimit ++ dn42ReceiveLimit ++ rtrCachesDown;
}

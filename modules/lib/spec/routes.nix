# The route model (issue #20): who offers which prefix to whom, as data. One
# place says which BGP sessions and interfaces a host runs and which prefixes
# BIRD should install in its kernel over which link or peer; monitoring's
# alert counts, the lab's expectations and doctor read it instead of deriving
# it again. The one BIRD prefix-pattern matcher is grammar/patterns.nix.
# Builtins only.
let
  inherit (builtins)
    attrNames
    attrValues
    concatMap
    elem
    elemAt
    filter
    fromJSON
    listToAttrs
    match
    stringLength
    substring
    ;
  ip = import ../base/ip.nix;
  util = import ../base/util.nix;
  defaults = import ../base/defaults.nix;
  planLinks = import ../plan/links.nix;
  layout = import ./layout.nix;
  dn42 = import ./dn42.nix;

  families = [ "ipv4" "ipv6" ];

  inherit (import ../grammar/patterns.nix) parsePattern matches matchesAny;

  # --- the plan's routes ---------------------------------------------------------

  hostOf = plan: name: plan.hosts.${name} or { };
  announced = plan: name: family: ((hostOf plan name).announce or { }).${family} or [ ];

  # The patterns of the named sets (the plan's over the defaults), one family.
  setPatterns =
    plan: family: names:
    let
      sets = defaults.prefix_sets // (plan.prefix_sets or { });
    in
    concatMap (name: (sets.${name} or { }).${family} or [ ]) names;

  importPatterns = plan: name: family: setPatterns plan family ((hostOf plan name).import_sets or [ ]);
  kernelPatterns = plan: name: family: setPatterns plan family ((hostOf plan name).kernel_export_sets or [ ]);

  linksNamed = plan: plan.links or { };

  # The link joining two hosts, by name.
  linkBetween =
    plan: a: b:
    util.firstOr null (
      filter (
        n:
        let
          l = (linksNamed plan).${n};
        in
        (l.reflector == a && l.client == b) || (l.reflector == b && l.client == a)
      ) (attrNames (linksNamed plan))
    );

  interfaceOfLink = plan: linkName: ((linksNamed plan).${linkName}).interface or defaults.interface;

  # What `reflector` hears itself, one family: [ { prefix; from; kind; } ] for
  # its statics (kind "static"), its clients' announcements ("ibgp") and what
  # its DN42 peers send that its import sets keep ("dn42"). `dn42Routes`:
  # reflector -> peer -> family -> [ prefix ] (what the peers announce; the plan
  # cannot know, so a caller says, the lab for its stand-ins).
  heardDirectly =
    plan: dn42Routes: reflector: family:
    map (prefix: { inherit prefix; from = reflector; kind = "static"; }) (announced plan reflector family)
    ++ concatMap (
      client: map (prefix: { inherit prefix; from = client; kind = "ibgp"; }) (announced plan client family)
    ) (planLinks.clientsOf plan reflector)
    ++ concatMap (
      peer:
      map (prefix: { inherit prefix; from = peer; kind = "dn42"; }) (
        filter (matchesAny (importPatterns plan reflector family)) (((dn42Routes.${reflector} or { }).${peer} or { }).${family} or [ ])
      )
    ) (attrNames ((hostOf plan reflector).dn42_peers or { }));

  # What `reflector` takes from its twin: what the twin heard itself, where it
  # is the twin's reflected set or in the reflector's own import sets
  # (render: importPrefixes || import_sets).
  heardFromTwin =
    plan: dn42Routes: reflector: twin: family:
    let
      reflected = (planLinks.reflectedBy plan twin).${family};
      accept = importPatterns plan reflector family;
    in
    filter (prefix: elem prefix reflected || matchesAny accept prefix) (
      map (r: r.prefix) (heardDirectly plan dn42Routes twin family)
    );

  # prefix -> { direct; via; }: what `reflector` offers its clients, heard
  # directly (direct) or only from the twins in `via` (ranked below every
  # direct route by the clients).
  offersOf =
    plan: dn42Routes: reflector: family:
    let
      second = concatMap (
        twin: map (prefix: { inherit prefix twin; }) (heardFromTwin plan dn42Routes reflector twin family)
      ) (planLinks.twinsOf plan reflector);
      direct = listToAttrs (
        map (r: { name = r.prefix; value = { direct = true; via = [ ]; }; }) (heardDirectly plan dn42Routes reflector family)
      );
      viaOf = prefix: map (s: s.twin) (filter (s: s.prefix == prefix) second);
      secondHand = listToAttrs (
        map (s: { name = s.prefix; value = { direct = false; via = viaOf s.prefix; }; }) second
      );
    in
    secondHand // direct;

  # A reflector's learned routes: prefix -> [ path ]. Its own statics win over
  # any copy and are not installed in its kernel.
  reflectorRoutes =
    plan: dn42Routes: name: family:
    let
      own = announced plan name family;
      dn42Peers = (hostOf plan name).dn42_peers or { };
      path =
        source:
        if source.kind == "dn42" then
          {
            kind = "dn42";
            peer = source.from;
            link = null;
            interface = dn42.interfaceOf source.from (dn42Peers.${source.from} // { interface = dn42Peers.${source.from}.interface or null; });
            preference = null;
            direct = true;
            via = [ ];
          }
        else
          let
            link = linkBetween plan name source.from;
          in
          {
            kind = "ibgp";
            peer = source.from;
            inherit link;
            interface = interfaceOfLink plan link;
            preference = null;
            direct = true;
            via = [ ];
          };
      twinPaths = concatMap (
        twin:
        map (
          prefix:
          (path { from = twin; kind = "ibgp"; }) // { inherit prefix; direct = false; via = [ twin ]; }
        ) (heardFromTwin plan dn42Routes name twin family)
      ) (planLinks.twinsOf plan name);
      tagged =
        map (s: (path s) // { inherit (s) prefix; }) (filter (s: s.kind != "static") (heardDirectly plan dn42Routes name family))
        ++ twinPaths;
      prefixes = util.uniqueStrings (map (p: p.prefix) tagged);
      hasDirect = prefix: builtins.any (p: p.prefix == prefix && p.direct) tagged;
    in
    listToAttrs (
      map (prefix: {
        name = prefix;
        # BIRD prefers a route heard directly over a twin's copy only by
        # its usual rules; a twin's copy is an alternative when no direct one.
        value = map (p: removeAttrs p [ "prefix" ]) (
          filter (p: p.prefix == prefix && (p.direct || !(hasDirect prefix))) tagged
        );
      }) (filter (prefix: !(elem prefix own)) prefixes)
    );

  # A client's learned routes: prefix -> [ path ], one per link whose
  # reflector offers it, kept by the client's import sets, never its own
  # announcements (BIRD drops them: ORIGINATOR_ID).
  clientRoutes =
    plan: dn42Routes: name: family:
    let
      own = announced plan name family;
      accept = importPatterns plan name family;
      links = filter (n: ((linksNamed plan).${n}.client or null) == name) (attrNames (linksNamed plan));
      pathsOf =
        linkName:
        let
          link = (linksNamed plan).${linkName};
          offers = offersOf plan dn42Routes link.reflector family;
        in
        map (prefix: {
          inherit prefix;
          kind = "ibgp";
          peer = link.reflector;
          link = linkName;
          interface = interfaceOfLink plan linkName;
          preference = link.preference or 100;
          inherit (offers.${prefix}) direct via;
        }) (filter (prefix: !(elem prefix own) && matchesAny accept prefix) (attrNames offers));
      tagged = concatMap pathsOf links;
    in
    listToAttrs (
      map (prefix: {
        name = prefix;
        value = map (p: removeAttrs p [ "prefix" ]) (filter (p: p.prefix == prefix) tagged);
      }) (util.uniqueStrings (map (p: p.prefix) tagged))
    );

  # The path a client's kernel uses: one its reflector heard directly before
  # one only a twin had, then the link's preference, then the link's name
  # (render/reflectors.nix).
  bestOf =
    paths:
    let
      rank = p: (if p.direct then 1000000 else 0) + (if p.preference == null then 0 else p.preference);
      better = a: b: if rank b > rank a then b else a;
    in
    builtins.foldl' better (builtins.head paths) (builtins.tail paths);

  # host name -> family -> [ { prefix; kernel; best; paths; } ], sorted by prefix.
  hostRoutes =
    plan: dn42Routes: name: family:
    let
      learned =
        if (hostOf plan name).role or null == "reflector" then
          reflectorRoutes plan dn42Routes name family
        else
          clientRoutes plan dn42Routes name family;
      kernel = kernelPatterns plan name family;
    in
    map (prefix: {
      inherit prefix;
      # BIRD's kernel export keeps these (kernel_export_sets).
      kernel = matchesAny kernel prefix;
      best = bestOf learned.${prefix};
      paths = learned.${prefix};
    }) (attrNames learned);

  # --- sessions and interfaces, from the host spec -----------------------------

  identifier = name: builtins.replaceStrings [ "-" "." ] [ "_" "_" ] name;

  # The BGP sessions bird.conf runs, named as render/bird.nix and
  # render/dn42.nix name them.
  sessionsOf =
    spec:
    let
      p = layout.prefixOf spec;
      v6 = link: util.firstOr null (filter (cidr: ip.familyOf (ip.addressOf cidr) == "ipv6") link.ips);
      peers = spec.dn42Peers or { };
    in
    map (link: {
      name = "${p}ibgp_${identifier link.peer.name}";
      kind = "ibgp";
      neighbor = link.neighborAddress;
      neighborAs = spec.asn;
      localAs = spec.asn;
      peerHost = link.peer.name;
      dn42Peer = null;
      inherit (link) interface;
      bfd = spec.tuning.bfd or false;
      ipv6NextHop = if v6 link == null then null else ip.addressOf (v6 link);
      importLimit = spec.tuning.importLimit or null;
    }) (attrValues spec.links)
    ++ map (
      name:
      let
        peer = peers.${name};
      in
      {
        name = "${p}dn42_${identifier name}";
        kind = "dn42";
        inherit (peer) neighbor;
        neighborAs = peer.asn;
        localAs = spec.asn;
        peerHost = null;
        # The plan's dn42_peers.<name> this session runs to (graph labels it).
        dn42Peer = name;
        interface = if peer.interface or null != null || peer.tunnel or null != null then dn42.interfaceOf name (peer // { interface = peer.interface or null; }) else null;
        bfd = false;
        ipv6NextHop = null;
        # The peer's own limits (render/dn42.nix), the sessions' where it has none.
        importLimit = if peer.importLimit or null != null then peer.importLimit else spec.tuning.importLimit or null;
        receiveLimit = peer.receiveLimit or null;
      }
    ) (attrNames peers)
    # DN42's route collector (render/dn42-collector.nix): export only, multihop.
    ++ (
      let
        c = dn42.collectorOf spec;
      in
      util.optional (c != null) {
        name = "${p}${dn42.collectorProtocol}";
        kind = "dn42-collector";
        inherit (c) neighbor;
        neighborAs = c.asn;
        localAs = spec.asn;
        peerHost = null;
        dn42Peer = null;
        interface = null;
        bfd = false;
        ipv6NextHop = null;
        importLimit = null;
      }
    );

  # The host's tunnel interfaces: its WireGuard links and its DN42 peerings.
  interfacesOf =
    spec:
    map (linkName: {
      name = spec.links.${linkName}.interface;
      kind = "link";
      link = linkName;
      peer = spec.links.${linkName}.peer.name;
    }) (attrNames spec.links)
    ++ map (
      name:
      let
        peer = spec.dn42Peers.${name};
      in
      {
        name = dn42.interfaceOf name (peer // { interface = peer.interface or null; });
        kind = if peer.tunnel or null != null then "dn42-tunnel" else "dn42";
        link = null;
        peer = name;
      }
    ) (filter (name: spec.dn42Peers.${name}.interface or null != null || spec.dn42Peers.${name}.tunnel or null != null) (attrNames (spec.dn42Peers or { })));

  # plan -> { dn42Routes ? { } } -> host name -> the host's model. `spec` is
  # the host spec (hostFromPlan) its sessions and interfaces come from.
  hostModel =
    plan: options: name:
    let
      dn42Routes = options.dn42Routes or { };
      spec = (import ./shape.nix).checked ((import ../plan/host.nix) plan name);
    in
    {
      role = (hostOf plan name).role or null;
      sessions = sessionsOf spec;
      interfaces = interfacesOf spec;
      routes = listToAttrs (map (family: { name = family; value = hostRoutes plan dn42Routes name family; }) families);
    };
in
{
  inherit parsePattern matches matchesAny setPatterns hostRoutes hostModel;

  # plan -> { dn42Routes ? { } } -> { hosts.<name> = hostModel; }
  model = plan: options: { hosts = builtins.mapAttrs (name: _: hostModel plan options name) (plan.hosts or { }); };

  # How many routes BIRD installs in `name`'s kernel at least, per family,
  # from the plan's own prefixes (monitoring's alert thresholds).
  kernelCounts =
    plan: name:
    listToAttrs (
      map (family: {
        name = family;
        value = builtins.length (filter (r: r.kernel) (hostRoutes plan { } name family));
      }) families
    );
}

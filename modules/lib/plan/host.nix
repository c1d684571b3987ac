# plan (builtins.fromTOML of hosts/plan.toml) -> name -> host spec, shaped
# exactly like the services.ibgpTunnel options (docs/interfaces.md §2).
let
  inherit (builtins) attrNames concatStringsSep mapAttrs;
  util = import ../base/util.nix;
  ip = import ../base/ip.nix;
  defaults = import ../base/defaults.nix;
  fields = import ../grammar/fields.nix;

  families = set: {
    ipv4 = set.ipv4 or [ ];
    ipv6 = set.ipv6 or [ ];
  };

  otherSide = side: if side == "reflector" then "client" else "reflector";

  prefixLength = cidr: toString (ip.splitCidr cidr).length;

  planLinks = import ./links.nix;

  # `side`: which end of the link this host is ("reflector" listens,
  # "client" dials); the host's own role decides the rest.
  linkSpec =
    plan: perClient: side: linkName: link:
    let
      other = otherSide side;
      peerHost = plan.hosts.${link.${other}} or (throw "ibgp-tunnel: links.${linkName}.${other} names host \"${link.${other}}\", which is not in the plan's [hosts]");
      port = link.port or defaults.port;
      dials = side == "client";
      meshed = planLinks.betweenReflectors plan link;
      isClient = side == "client" && !meshed;
    in
    {
      interface = link.interface or defaults.interface;
      listenPort = port;
      ips = [
        "${link."${side}_ipv4"}/${prefixLength link.ipv4}"
        "${link."${side}_ipv6"}/${prefixLength link.ipv6}"
      ];
      neighborAddress = link."${other}_ipv4";
      mtu = link.mtu or null;
      # A reflector accepts from a client exactly what that client announces,
      # from another reflector what that one reflects.
      importPrefixes =
        if isClient then
          families { }
        else if meshed then
          planLinks.reflectedBy plan link.${other}
        else
          families (peerHost.announce or { });
      # The client's preference for this reflector's routes (issue #13).
      preference = if isClient then link.preference or null else null;
      # The client of this link links to another reflector too (render/reflectors.nix).
      alternativePath =
        !meshed
        && builtins.length (
          if builtins.isString link.client then
            perClient.${link.client} or [ ]
          else
            builtins.filter (other: (other.client or null) == link.client) (builtins.attrValues (plan.links or { }))
        ) > 1;
      reflectorPeer = meshed;
      peer = {
        name = link.${other};
        publicKey = peerHost.public_key or null;
        presharedKeyFile = defaults.pskFile linkName;
        endpoint =
          if dials then
            ip.endpointString (peerHost.endpoint or (throw "ibgp-tunnel: hosts.${link.${other}}.endpoint is missing: a reflector needs the public address its clients dial")) port
          else
            null;
        allowedIPs = defaults.allowed_ips;
        # Only the dialling side keeps the NAT mapping alive.
        persistentKeepalive = if dials then defaults.persistent_keepalive else null;
      };
    };

  dn42PeerSpec = import ./dn42-peer.nix;

  # The plan's own networks: every link's subnets and every client's
  # announcements. A client accepts new connections out of its tunnels from
  # these alone (render/nftables.nix); anything else is DN42 (or beyond).
  internalPrefixes =
    plan:
    let
      links = builtins.attrValues (plan.links or { });
      clients = builtins.filter (h: (h.role or null) == "client") (builtins.attrValues (plan.hosts or { }));
      # As written when it is a network already (the plan's usual form).
      net = cidr: if (import ../grammar/tokens.nix).prefixAny.problem cidr == null || ip.parseCidr cidr == null then cidr else ip.networkOf cidr;
      of = family: util.uniqueStrings (map net (builtins.filter builtins.isString (map (link: link.${family} or null) links)) ++ builtins.concatMap (h: (families (h.announce or { })).${family}) clients);
    in
    {
      ipv4 = of "ipv4";
      ipv6 = of "ipv6";
    };

  # What the plan opens to DN42: a client's own entries; a reflector, where
  # DN42 comes in, lets through every host's (one behind another reflector
  # included, reached over the reflectors' link).
  dn42Inbound =
    plan: name: host:
    let
      entry = e: {
        prefix = e.prefix or null;
        proto = e.proto or null;
        port = e.port or null;
      };
      all = builtins.concatMap (h: h.dn42_inbound or [ ]) (builtins.attrValues (plan.hosts or { }));
    in
    map entry (if (host.role or null) == "reflector" then all else host.dn42_inbound or [ ]);
in
plan: name:
let
  host =
    plan.hosts.${name}
      or (throw "ibgp-tunnel: host \"${name}\" is not in the plan; its hosts are: ${concatStringsSep ", " (attrNames (plan.hosts or { }))}");
  ownLinks = util.filterAttrs (_: link: (link.reflector or null) == name || (link.client or null) == name) (plan.links or { });
  # The plan's links by client, built once: a reflector asks for each of its
  # links whether that client has another (linear, not links × links).
  perClient = builtins.groupBy (link: link.client) (
    builtins.filter (link: builtins.isString (link.client or null)) (builtins.attrValues (plan.links or { }))
  );
  sideOf = link: if (link.reflector or null) == name then "reflector" else "client";
in
# asn; role, routerId, importSets, announce, ...: the plan and host fields of
# fields.nix; below, the ones it marks derived.
fields.fromPlan "plan" plan
# A host without [hosts.<h>.autopeer] has none in its spec either (specOptional:
# read as null, off), so the specs of plans written before it stay as they were.
// removeAttrs (fields.fromPlan "host" host) (if host ? autopeer then [ ] else [ "autopeer" ])
// {
  enable = true;
  prefixSets = mapAttrs (_: families) (defaults.prefix_sets // (plan.prefix_sets or { }));
  openFirewall = true;
  dn42Inbound = dn42Inbound plan name host;
  internalPrefixes = internalPrefixes plan;
  privateKeyFile = defaults.privateKeyFile;
  links = mapAttrs (linkName: link: linkSpec plan perClient (sideOf link) linkName link) ownLinks;
  dn42Peers = mapAttrs dn42PeerSpec (host.dn42_peers or { });
  tuning = defaults.tuning // util.camelCaseAttrs (plan.tuning or { });
  dn42 = (import ./dn42-peer.nix).host host;
}

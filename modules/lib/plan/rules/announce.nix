# Plan rules of what hosts announce: overlaps (with links and between
# clients), anycast, and misroutes through the sets a host imports.
let
  inherit (builtins)
    all
    attrNames
    concatMap
    elem
    filter
    head
    isString
    listToAttrs
    toJSON
    ;
  inherit (import ./common.nix)
    util
    ip
    t
    checks
    defaults
    optional
    families
    finding
    error
    indexed
    names
    tokenError
    valid
    mapHosts
    knownSets
    ;

  announceRules =
    plan:
    mapHosts plan (
      hostName: host:
      concatMap (
        family:
        concatMap (entry: tokenError (t.prefix family) [ "hosts" hostName "announce" family entry.index ] entry.value) (
          indexed (host.announce.${family} or [ ])
        )
      ) families
    );

  # What a client opens to DN42 (render/nftables.nix writes it into nft).

  linkSubnets =
    plan:
    concatMap (
      linkName:
      concatMap (
        family:
        let
          facts = plan._links.${linkName}.${family};
        in
        optional (facts.subnet != null) {
          inherit linkName family;
          inherit (facts) text bits;
        }
      ) families
    ) (attrNames (plan.links or { }));

  announced =
    plan:
    concatMap (
      hostName:
      concatMap (
        family:
        concatMap (
          entry:
          optional (valid (t.prefix family) entry.value) {
            inherit hostName family;
            inherit (entry) index value;
            where = "hosts.${hostName}.announce.${family}[${toString entry.index}]";
            bits = ip.prefixBits entry.value;
          }
        ) (indexed (plan.hosts.${hostName}.announce.${family} or [ ]))
      ) families
    ) (attrNames plan.hosts);

  # Sorted by family and bits, a prefix comes right before everything inside
  # it, and stays a prefix of every element up to the last of those: one sweep
  # with the chain of open prefixes (at most 129 deep) finds every overlap of
  # link subnets with each other and with announced prefixes, in n log n.
  overlapRules =
    plan:
    let
      # order: key, then links before announcements, then by name, as one
      # string ("\n" sorts before every character of a key), so the n log n
      # comparisons are one string compare each.
      items =
        map (s: s // { kind = "link"; key = "${s.family}/${s.bits}"; order = "${s.family}/${s.bits}\n0\n${s.linkName}"; }) (linkSubnets plan)
        ++ map (a: a // { kind = "announce"; key = "${a.family}/${a.bits}"; order = "${a.family}/${a.bits}\n1\n${a.where}"; }) (announced plan);
      # builtins.lessThan itself as the comparator: sort then compares in
      # C++, no Nix call for each of its n log n comparisons. The orders are
      # distinct (a link's name, an entry's path), so each finds its item.
      byOrder = listToAttrs (map (item: { name = item.order; value = item; }) items);
      sorted = map (order: byOrder.${order}) (builtins.sort builtins.lessThan (map (item: item.order) items));
      # opens[i]: the prefixes still open when sorted[i] comes, each step
      # built from the one before (a lazy list, so each once). Forced in order
      # first, so no step recurses through all those before it; the pairs are
      # then one concatMap, not a list copied at every step.
      count = builtins.length sorted;
      opens = builtins.genList (
        i:
        if i == 0 then
          [ ]
        else
          let
            item = builtins.elemAt sorted i;
          in
          filter (o: util.hasPrefix o.key item.key) (builtins.elemAt opens (i - 1) ++ [ (builtins.elemAt sorted (i - 1)) ])
      ) count;
      forced = builtins.foldl' (_: i: builtins.seq (builtins.length (builtins.elemAt opens i)) null) null (builtins.genList (i: i) count);
      pairs = builtins.seq forced (
        concatMap (i: let item = builtins.elemAt sorted i; in map (o: { first = o; second = item; }) (builtins.elemAt opens i)) (builtins.genList (i: i) count)
      );
      message =
        pair:
        let
          inherit (pair) first second;
        in
        if first.kind == "link" && second.kind == "link" then
          [ (error [ "links" second.linkName second.family ] "${second.text} overlaps links.${first.linkName}.${first.family} (${first.text}); give every link its own subnet") ]
        else if first.kind == "announce" && second.kind == "announce" then
          [ ]
        else
          let
            link = if first.kind == "link" then first else second;
            a = if first.kind == "link" then second else first;
          in
          [
            (error [ "links" link.linkName link.family ] "${link.text} overlaps ${a.where} (${a.value}): routes for it would compete with the tunnel; use a link subnet outside every announced prefix")
          ];
      linkPairs = filter (pair: pair.first.kind == "link" || pair.second.kind == "link") pairs;
      announcePairs = filter (pair: pair.first.kind == "announce" && pair.second.kind == "announce") pairs;
    in
    concatMap message linkPairs ++ announceOverlaps plan announcePairs;

  # The same prefix (or one inside another) announced by two clients: the
  # reflector passes DN42 one of the routes, so replies reach one site only.
  # (A client against a reflector it dials: misrouteRules.)
  # Intended anycast lists every such prefix under [anycast].
  announceOverlaps =
    plan: pairs:
    let
      # Reflectors announcing one prefix are redundant exits for it (traffic
      # leaves through either uplink, masqueraded), not two destinations.
      isClient = name: (plan.hosts.${name}.role or null) == "client";
      anycast = family: map ip.prefixBits (filter (valid (t.prefix family)) (plan.anycast.${family} or [ ]));
      isAnycast = a: elem a.bits (anycast a.family);
      refused = filter (
        pair:
        let
          inherit (pair) first second;
        in
        first.hostName != second.hostName
        && isClient first.hostName
        && isClient second.hostName
        && !(isAnycast first && isAnycast second)
      ) pairs;
      # One finding per announcement, naming the first it overlaps.
      bySecond = builtins.groupBy (pair: pair.second.where) refused;
    in
    map (
      where:
      let
        inherit (head bySecond.${where}) first second;
        same = first.bits == second.bits;
      in
      error [ "hosts" second.hostName "announce" second.family second.index ] "announce ${
        if same then "it" else "these addresses"
      } from one client only, or, if every client serves ${if same then "it" else "them"} itself, list ${
        if same then "it" else "both prefixes"
      } under [anycast] ${second.family}: ${second.value} ${
        if same then "is also" else "overlaps"
      } ${first.where} (${first.value}), and the reflector passes one route on to DN42, so only one site gets the replies"
    ) (attrNames bySecond);

  anycastRules =
    plan:
    concatMap (
      family: concatMap (entry: tokenError (t.prefix family) [ "anycast" family entry.index ] entry.value) (indexed (plan.anycast.${family} or [ ]))
    ) families;

  # --- misroutes -----------------------------------------------------------

  # Every set's patterns, parsed once (attribute values are memoised).
  parsedSets =
    plan:
    builtins.mapAttrs (
      _: set:
      listToAttrs (
        map (family: {
          name = family;
          value = filter (p: p != null) (map (checks.parsePattern family) (set.${family} or [ ]));
        }) families
      )
    ) (knownSets plan);

  patternsOf = parsed: family: setNames: concatMap (setName: (parsed.${setName} or { }).${family} or [ ]) (filter isString setNames);

  misrouteRules =
    plan:
    let
      ann = announced plan;
      annByHost = builtins.groupBy (a: a.hostName) ann;
      parsed = parsedSets plan;
      dialledBy = builtins.groupBy (linkName: plan.links.${linkName}.client) (attrNames (plan.links or { }));
      lists = [ "import_sets" "kernel_export_sets" ];
      coversSets = family: names: checks.coversEverything (checks.reachNets (patternsOf parsed family names));
      # Clients mostly name the same sets: whether they cover everything is
      # asked once per distinct (family, names), not once per host.
      setsKey = family: names: toJSON [ family (filter isString names) ];
      coversOf = listToAttrs (
        concatMap (
          host:
          concatMap (
            key:
            let
              names = host.${key} or [ ];
            in
            if builtins.isList names then map (family: { name = setsKey family names; value = coversSets family names; }) families else [ ]
          ) lists
        ) (builtins.attrValues plan.hosts)
      );
    in
    mapHosts plan (
      hostName: host:
      let
        allow = host.allow_cover_everything or false;
        # The reflectors this client dials, with their endpoint addresses.
        dialled = map (linkName: plan.links.${linkName}.reflector) (dialledBy.${hostName} or [ ]);
        endpoints = concatMap (
          reflector:
          let
            endpoint = plan.hosts.${reflector}.endpoint or null;
          in
          optional (endpoint != null && isString endpoint && ip.familyOf endpoint != null) { inherit reflector endpoint; }
        ) dialled;
        everything =
          key: family:
          let
            names = host.${key} or [ ];
          in
          !allow && (if builtins.isList names then coversOf.${setsKey family names} else coversSets family names);
        coverEverything =
          key:
          concatMap (
            family:
            optional (everything key family) (
              error [ "hosts" hostName key ] "the ${family} sets named here together cover every address (e.g. 0.0.0.0/0+, or the two /1 halves): that routes all traffic, the tunnel's own included; narrow the sets, or set allow_cover_everything = true on this host if that is really meant"
            )
          ) families;
        coverEndpoint =
          key:
          concatMap (
            e:
            let
              family = ip.familyOf e.endpoint;
              hit = checks.patternsReaching (patternsOf parsed family (host.${key} or [ ])) e.endpoint;
            in
            # Covering everything says it already.
            optional (host.role == "client" && hit != [ ] && !(everything key family)) (
              error [ "hosts" hostName key ] "these sets accept a route for ${e.endpoint}, the endpoint of reflector ${e.reflector}: the tunnel would be routed into itself; take that address out of the sets"
            )
          ) endpoints;
        myAnnounce = annByHost.${hostName} or [ ];
        reflectorAnnounce = concatMap (reflector: annByHost.${reflector} or [ ]) dialled;
        announceAll = concatMap (
          family:
          optional (!allow && checks.coversEverything (map (a: a.bits) (filter (a: a.family == family && a.bits != "") myAnnounce))) (
            error [ "hosts" hostName "announce" family ] "these prefixes together cover every ${family} address: announcing them is a default route in pieces; narrow them, or set allow_cover_everything = true on this host if that is really meant"
          )
        ) families;
        announceDefault = map (a: error [ "hosts" hostName "announce" a.family a.index ] "${a.value} is a default route: BIRD's filters reject it everywhere; announce the prefixes themselves") (
          filter (a: a.bits == "") myAnnounce
        );
        announceClash = concatMap (
          a:
          let
            clash = filter (r: r.family == a.family && checks.overlaps r.bits a.bits) reflectorAnnounce;
          in
          optional (host.role == "client" && clash != [ ]) (
            error [ "hosts" hostName "announce" a.family a.index ] "${a.value} overlaps ${(head clash).where} (${(head clash).value}), which reflector ${(head clash).hostName} announces too: each end would route it to the other; announce it on one side only"
          )
        ) myAnnounce;
      in
      concatMap coverEverything lists ++ concatMap coverEndpoint lists ++ announceAll ++ announceDefault ++ announceClash
    );

  # Over the defaults: a plan's hold time must suit the default keepalive too.
in
{
  inherit
    announceRules
    overlapRules
    anycastRules
    misrouteRules
    ;
}

# Plan rules for more than one reflector (issue #13), imported by
# plan/problems.nix: plan (with its helpers) -> [ finding ]. Distinct router
# ids, per-host ports and interfaces are rules there already; these add what
# two reflectors bring: cluster ids, the client's choice between reflectors,
# and every client reaching every reflector it names.
{
  error,
  warning,
  tokenError,
  valid,
  t,
  defaults,
  util,
  checks,
}:
let
  inherit (builtins) attrNames concatMap elem filter groupBy head length;
  inherit (util) optional;

  reflectorsOf = plan: filter (name: (plan.hosts.${name}.role or null) == "reflector") (attrNames plan.hosts);

  # RFC 4456: each reflector its own cluster id (see render/reflectors.nix for
  # why); BIRD's default is the router id, so that is the one compared when
  # cluster_id is left out.
  clusterIdRules =
    plan:
    let
      withId = filter (name: plan.hosts.${name} ? cluster_id) (attrNames plan.hosts);
      reflectors = reflectorsOf plan;
      effective = name: plan.hosts.${name}.cluster_id or plan.hosts.${name}.router_id;
      usable = filter (name: valid t.clusterId (effective name)) reflectors;
      owners = groupBy effective usable;
      later = filter (name: head owners.${effective name} != name) usable;
      said = name: if plan.hosts.${name} ? cluster_id then "cluster_id" else "router_id (its default cluster id)";
    in
    concatMap (
      name:
      let
        host = plan.hosts.${name};
      in
      if (host.role or null) != "reflector" then
        [ (error [ "hosts" name "cluster_id" ] "is for reflectors and would be ignored on a client; remove it") ]
      else
        tokenError t.clusterId [ "hosts" name "cluster_id" ] host.cluster_id
    ) withId
    ++ map (
      name:
      error [ "hosts" name (if plan.hosts.${name} ? cluster_id then "cluster_id" else "router_id") ] "${effective name} is also the cluster id of reflector ${head owners.${effective name}} (its ${said (head owners.${effective name})}): give each reflector its own cluster id, or a reflector drops every route the other reflected (RFC 4456 CLUSTER_LIST); set cluster_id = \"<another dotted quad>\" on one of them"
    ) later;

  planLinks = import ../links.nix;

  # A link whose both ends are reflectors (`client` names the one that dials).
  betweenReflectors = plan: linkName: planLinks.betweenReflectors plan plan.links.${linkName};

  # client name -> the names of its links to reflectors.
  linksOfClient =
    plan:
    groupBy (linkName: toString (plan.links.${linkName}.client or "")) (
      filter (linkName: !(betweenReflectors plan linkName)) (attrNames (plan.links or { }))
    );

  preferenceRules =
    plan:
    let
      byClient = linksOfClient plan;
      preferenceOf = linkName: plan.links.${linkName}.preference or 100;
    in
    concatMap (
      linkName:
      let
        link = plan.links.${linkName};
      in
      if !(link ? preference) then
        [ ]
      else if betweenReflectors plan linkName then
        [ (error [ "links" linkName "preference" ] "is for a link to a client, which chooses between its reflectors; between two reflectors each ranks the other's routes below its own by itself: remove it") ]
      else
        tokenError t.localPref [ "links" linkName "preference" ] link.preference
        ++ (
          let
            count = length (byClient.${toString (link.client or "")} or [ ]);
            below = if count > 1 then checks.preferenceBelowRanks link.preference count else null;
          in
          optional (below != null) (error [ "links" linkName "preference" ] below)
        )
    ) (attrNames (plan.links or { }))
    ++ concatMap (
      client:
      let
        # One link per reflector counts (a second to the same one is an error of its own).
        reflectorOf = linkName: toString (plan.links.${linkName}.reflector or "");
        firstPerReflector = groupBy reflectorOf byClient.${client};
        links = filter (linkName: valid t.localPref (preferenceOf linkName) && head firstPerReflector.${reflectorOf linkName} == linkName) byClient.${client};
        owners = groupBy (linkName: toString (preferenceOf linkName)) links;
        later = filter (linkName: head owners.${toString (preferenceOf linkName)} != linkName) links;
      in
      map (
        linkName:
        error [ "links" linkName "preference" ] "${toString (preferenceOf linkName)} is also the preference of links.${
          head owners.${toString (preferenceOf linkName)}
        } (100 when left out): client ${client} would choose between its reflectors by BIRD's tie-breakers, not by the plan; give each of its links its own preference (higher wins, e.g. 200 for the preferred reflector)"
      ) (if length byClient.${client} > 1 then later else [ ])
    ) (attrNames byClient);

  # A client reaches each reflector it names at that reflector's own address:
  # two links to one endpoint are one machine, no redundancy.
  endpointRules =
    plan:
    let
      byClient = linksOfClient plan;
      endpointOf = linkName: toString (plan.hosts.${plan.links.${linkName}.reflector or ""}.endpoint or "");
    in
    concatMap (
      client:
      let
        links = filter (linkName: endpointOf linkName != "") byClient.${client};
        owners = groupBy endpointOf links;
      in
      map (
        linkName:
        error [ "links" linkName "reflector" ] "reflector ${plan.links.${linkName}.reflector} has the endpoint ${endpointOf linkName}, like the reflector of links.${head owners.${endpointOf linkName}}: client ${client} would dial one machine twice; give each reflector its own public address"
      ) (filter (linkName: head owners.${endpointOf linkName} != linkName && plan.links.${head owners.${endpointOf linkName}}.reflector != plan.links.${linkName}.reflector) links)
    ) (attrNames byClient);

  # A reflector learns a client's prefixes, and the client learns what the
  # reflector's DN42 peers offer, only if the client links to it or to a
  # reflector linked to it: what one reflector hears from another it passes
  # to its clients only, never to a third reflector (RFC 4456), so reflectors
  # mesh.
  coverageRules =
    plan:
    let
      reflectors = reflectorsOf plan;
      byClient = linksOfClient plan;
      # Each reflector's twins once, not once per client asking.
      twins = builtins.listToAttrs (map (reflector: { name = reflector; value = planLinks.twinsOf plan reflector; }) reflectors);
      matters =
        client: reflector:
        let
          host = plan.hosts.${client} or { };
          r = plan.hosts.${reflector};
        in
        (host.announce.ipv4 or [ ]) != [ ]
        || (host.announce.ipv6 or [ ]) != [ ]
        || (r.dn42_peers or { }) != { }
        || (r.announce.ipv4 or [ ]) != [ ]
        || (r.announce.ipv6 or [ ]) != [ ];
    in
    concatMap (
      client:
      let
        host = plan.hosts.${client} or { };
        named = filter builtins.isString (map (linkName: plan.links.${linkName}.reflector or null) byClient.${client});
        reaches = reflector: elem reflector named || builtins.any (twin: elem twin named) twins.${reflector};
        missing = filter (r: !(reaches r) && matters client r) reflectors;
      in
      optional ((host.role or null) == "client" && named != [ ] && missing != [ ]) (
        warning [ "hosts" client ] "links only to ${builtins.concatStringsSep ", " named}, and ${builtins.concatStringsSep ", " missing} is linked neither to ${client} nor to a reflector ${client} links to: ${head missing} and its clients never learn this client's prefixes, and this client never gets ${head missing}'s DN42 routes and announcements; add a link from ${client} to ${head missing}, or join ${head missing} and ${head named} with a link whose both ends are reflectors (reflectors mesh: what one hears from another it passes to its clients only)"
      )
    ) (filter (client: plan.hosts ? ${client}) (attrNames byClient));

  # Two clients that both announce prefixes route to each other's LANs without
  # NAT. If they order their shared reflectors differently, a request leaves
  # through one reflector and its reply comes back through the other, whose
  # stateful firewall (NixOS: ct state invalid drop) has never seen the flow
  # and drops it (seen in the lab). So their preferences must agree.
  symmetryRules =
    plan:
    let
      byClient = linksOfClient plan;
      announces =
        client:
        let
          host = plan.hosts.${client} or { };
        in
        (host.role or null) == "client" && ((host.announce.ipv4 or [ ]) != [ ] || (host.announce.ipv6 or [ ]) != [ ]);
      clients = filter announces (attrNames byClient);
      prefOf = client: reflector: let links = filter (l: (plan.links.${l}.reflector or null) == reflector) byClient.${client}; in if links == [ ] then null else plan.links.${head links}.preference or 100;
      linkTo = client: reflector: head (filter (l: (plan.links.${l}.reflector or null) == reflector) byClient.${client});
      reflectorsOfClient = client: map (l: plan.links.${l}.reflector or null) byClient.${client};
      numeric = v: builtins.isInt v;
      # Ordered pairs (r1, r2) of a client's reflectors it ranks r1 over r2
      # (`above`) or r2 over r1 (`below`), in the order of its links, the
      # first link to a reflector counting: a key per pair, so the clients
      # that rank a pair one way are found through an index, not by comparing
      # every two clients.
      pairsOf =
        client: wanted:
        let
          rs = reflectorsOfClient client;
        in
        concatMap (
          r1:
          concatMap (
            r2:
            let
              p1 = prefOf client r1;
              p2 = prefOf client r2;
            in
            optional (r2 != r1 && numeric p1 && numeric p2 && wanted p1 p2) { inherit r1 r2; key = builtins.toJSON [ r1 r2 ]; }
          ) rs
        ) rs;
      # pair key -> the clients ranking r1 over r2, in name order (`clients`
      # is sorted), so the head of each is the earliest.
      above = groupBy (x: x.key) (concatMap (a: map (p: p // { inherit a; }) (pairsOf a (a1: a2: a1 > a2))) clients);
      # A conflict of `b` with an earlier client `a`: a pair `a` ranks r1 over
      # r2 and `b` the reverse. The earliest such `a` wins, then `b`'s first
      # pair (in the order of its links) `a` ranks the other way.
      found =
        b:
        let
          candidates = concatMap (
            p:
            let
              a = (head above.${p.key}).a;
            in
            optional (above ? ${p.key} && a < b) (p // { inherit a; })
          ) (pairsOf b (b1: b2: b1 < b2));
          earliest = builtins.foldl' (m: c: if c.a < m then c.a else m) (head candidates).a candidates;
        in
        filter (c: c.a == earliest) candidates;
    in
    concatMap (
      b:
      let
        conflicts = found b;
        first = head conflicts;
      in
      optional (conflicts != [ ]) (
        error [ "links" (linkTo b first.r2) "preference" ] "client ${b} prefers ${first.r2} over ${first.r1}, client ${first.a} the reverse: traffic between their LANs would leave through one reflector and its replies come back through the other, whose firewall drops them as a flow it never saw; give both clients the same order of reflectors"
      )
    ) clients;
in
plan: clusterIdRules plan ++ preferenceRules plan ++ endpointRules plan ++ coverageRules plan ++ symmetryRules plan

# Two or more reflectors (issue #13): what a host's bird.conf says beyond the
# single-reflector case. Read by bird.nix; every value here already passed
# the core's emitters (spec/shape.nix).
#
# Cluster ids (RFC 4456). Each reflector keeps its own cluster id: BIRD's
# default, its router id, unless the plan gives `cluster_id`, and the plan
# rules refuse two reflectors with the same one. BIRD takes the id from the
# protocol a route leaves or arrives by, so `rr cluster id` goes on every
# iBGP session of the reflector, the one to its twin included.
#   A client linked to both reflectors is heard by each directly. Reflectors
# may also be linked to each other (a link whose both ends are reflectors):
# then each is a plain iBGP peer of the other, not a client, and sends it
# what its clients announce (reflected: client -> non-client) and what its
# DN42 peers offer (eBGP -> iBGP), but never what it heard from the twin
# (non-client -> non-client is not reflected), so nothing loops between
# them. That is what reaches a reflector from a client linked only to the
# other one, and a DN42 route only the other's peer offers; and when a
# client's tunnel to one reflector is down, that reflector still reaches
# the client's LAN through its twin.
#   With distinct ids the twin's copy of a route the reflector also heard
# directly is accepted and ranked below the direct one (below, and a longer
# CLUSTER_LIST besides); a copy of the reflector's own reflection comes back
# with its own id in CLUSTER_LIST and is dropped, and a client's own route
# comes back to it with ORIGINATOR_ID = its router id and is dropped. With
# one shared id each reflector would drop everything its twin reflected: a
# client linked to only one of them would be invisible to the other's.
let
  inherit (builtins) attrValues filter length;

  # The other end is a reflector as well (set from the plan for a link
  # between two reflectors). The flag is read first, so a value that is not a
  # boolean is refused on a client too, where it would change nothing.
  isReflectorPeer = spec: link: (link.reflectorPeer or false) == true && spec.role == "reflector";

  # Marks a route a reflector heard from its twin, so the clients can rank it
  # below what a reflector heard directly: our own ASN's large community
  # namespace, function 1 ("passed between reflectors"), value 1. Clients and
  # reflectors export only their statics to anyone outside, so it stays inside.
  viaTwin = ownAs: "(${ownAs}, 1, 1)";

  # The LOCAL_PREF a client gives a link's routes: `preference` (100 when
  # left out) for routes the reflector heard itself; for routes it only had
  # from its twin, the link's rank among the client's links (0 for the least
  # preferred), so every direct route wins over every second-hand one and
  # second-hand ones still follow the plan's order. The plan rules keep every
  # preference above the ranks.
  preferenceOf = link: if (link.preference or null) == null then 100 else link.preference;
  rankOf =
    spec: link:
    length (filter (other: preferenceOf other < preferenceOf link) (attrValues spec.links));
  choosesBetween = spec: link: spec.role == "client" && (length (attrValues spec.links) > 1 || (link.preference or null) != null);
in
{
  inherit isReflectorPeer viaTwin;

  # "a || b" of two conditions either of which may be null (matches nothing).
  either =
    a: b:
    if a == null then
      b
    else if b == null then
      a
    else
      "${a} || ${b}";

  # A link whose client has another reflector too: its routes have somewhere
  # else to go, so BFD down drops them at once (`bfd on`) on both ends rather
  # than keeping them for the graceful restart time (`bfd graceful`).
  #   On the client, a dead preferred reflector's routes would otherwise stay
  #   installed (and chosen: stale routes keep their preference) for that time.
  #   On the reflector, stale routes of a cut-off client would be reflected to
  #   the other clients, which prefer them, and flushed when the client
  #   reconnects (it restarted nothing, so it sets no forwarding bit, and
  #   RFC 4724 has the stale routes removed then): the others' routes would
  #   move to the preferred tunnel, away, and back. Measured in
  #   bench/two_reflectors.py and docs/performance.md; the price is that a
  #   restarting BIRD (BIRD 2 and 3 send no BFD AdminDown) has its routes
  #   moved to the other reflector for the restart instead of kept in place,
  #   and a restarting client's LAN is gone until it announces it again.
  #   Long-lived stale routes instead (`bfd graceful`, graceful restart time
  #   0, LLGR: kept but ranked below every fresh route) fixed that on paper
  #   and in most runs, but BIRD 3.1.8 sometimes took 3 to 16 s to rank them
  #   down, leaving a dead reflector's routes chosen (docs/performance.md).
  #   Between two reflectors, each other's routes are everyone's second
  #   choice: drop them at once too.
  hasAlternative =
    spec: link:
    (spec.role == "client" && length (attrValues spec.links) > 1)
    || (link.alternativePath or false) == true
    || isReflectorPeer spec link;

  # `rr cluster id` only where the plan names one; otherwise BIRD's default
  # (the router id) is already distinct per reflector.
  clusterLines =
    spec: link:
    if spec.role == "reflector" && (spec.clusterId or null) != null then
      [ "rr cluster id ${spec.clusterId};" ]
    else
      [ ];

  # The client's choice between its reflectors: LOCAL_PREF set on import, so
  # the preferred reflector's routes win while it is up, whichever arrived
  # first, and come back once it returns (no tie-break on route age).
  preferenceLines =
    ownAs: spec: link:
    if choosesBetween spec link then
      [
        "if ${viaTwin ownAs} ~ bgp_large_community then bgp_local_pref = ${toString (rankOf spec link)};"
        "else bgp_local_pref = ${toString (preferenceOf link)};"
      ]
    else
      [ ];

  # A reflector's import from its twin: below its own routes (BIRD's default
  # LOCAL_PREF is 100), so the twin is a fallback and never the path of
  # choice, and marked for the clients.
  peerImportLines =
    ownAs: spec: link:
    if isReflectorPeer spec link then
      [
        "bgp_local_pref = 50;"
        "bgp_large_community.add(${viaTwin ownAs});"
      ]
    else
      [ ];
}

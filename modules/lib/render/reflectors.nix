# Two or more reflectors (issue #13): what a host's bird.conf says beyond the
# single-reflector case. Read by bird.nix; every value here already passed
# the core's emitters (render/spec.nix).
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
  # between two reflectors).
  isReflectorPeer = spec: link: spec.role == "reflector" && (link.reflectorPeer or false) == true;

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
  # else to go, so BFD or session down must take them out of first place at
  # once on both ends, not leave them preferred for the graceful restart time
  # (`bfd graceful` with a 5 s restart time: 5 s of black hole, measured).
  #   On the client, a dead preferred reflector's routes would stay chosen.
  #   On the reflector, a cut-off client's stale routes would be reflected to
  #   the other clients, which prefer them, and flushed when it reconnects
  #   (RFC 4724: it restarted nothing, so no forwarding bit): a route flap.
  # Dropping them (`bfd on`) did both, but also dropped a restarting client's
  # LAN at the reflectors until it re-announced (seconds; 15 s on BIRD 3,
  # which waits for its recovery) and a reflector's routes nobody else has.
  # Long-lived stale routes instead (depreferenceLines) rank below every
  # fresh route yet stay where nothing else is: measured in
  # bench/two_reflectors.py and docs/performance.md.
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

  # Graceful restart on a link with an alternative: restart time 0, so on BFD
  # down (`bfd graceful`) or a neighbour's restart its routes are long-lived
  # stale at once. BIRD ranks an LLGR-stale route below every fresh one before
  # it looks at LOCAL_PREF (RFC 9494), so the other reflector's routes take
  # over within BFD's detection time, as if these were dropped; but a route
  # nobody else offers (a restarting client's LAN, a prefix only this
  # reflector's DN42 peer has) stays in use, and stays in the kernel, for a
  # restart and its recovery: the restart time and BIRD's graceful restart
  # wait (BIRD 3 sends End-of-RIB only once its recovery is over).
  # (null timers: BIRD's defaults, 120 s and 240 s.)
  depreferenceLines =
    t:
    let
      or' = value: fallback: if value == null then fallback else value;
    in
    [
      "graceful restart on;"
      "graceful restart time 0;"
      "long lived graceful restart on;"
      "long lived stale time ${toString (or' t.gracefulRestartTime 120 + or' t.gracefulRestartWait 240)};"
    ];

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

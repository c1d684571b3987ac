# Two or more reflectors (issue #13): what a host's bird.conf says beyond the
# single-reflector case. Read by bird.nix; every value here already passed
# the core's emitters (render/spec.nix).
#
# Cluster ids (RFC 4456). Each reflector keeps its own cluster id: BIRD's
# default, its router id, unless the plan gives `cluster_id`, and the plan
# rules refuse two reflectors with the same one. Reflectors here do not peer
# with each other: every client that should be reachable through a reflector
# links to it, so each reflector hears each such client directly, and a
# client never re-announces what it learns (its export is its own statics).
# A reflected route therefore carries exactly one CLUSTER_LIST entry and
# ORIGINATOR_ID = the announcing client; BIRD drops a route whose
# ORIGINATOR_ID is its own router id, so a client never takes its own LAN
# back through the other reflector. Distinct ids keep that safe if reflectors
# are ever meshed: with one shared id, a reflector would drop every route its
# twin reflected (its own id in CLUSTER_LIST), so a client linked to only one
# of them would be invisible to the other's clients; with distinct ids the
# copy is accepted, ranked below the direct one (longer CLUSTER_LIST), and
# loops are still cut by ORIGINATOR_ID and the CLUSTER_LIST check.
let
  inherit (builtins) attrValues length;
in
{
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
  #   moved to the other reflector for the restart instead of kept in place.
  hasAlternative =
    spec: link: (spec.role == "client" && length (attrValues spec.links) > 1) || (link.alternativePath or false) == true;

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
    spec: link:
    if spec.role == "client" && (link.preference or null) != null then
      [ "bgp_local_pref = ${toString link.preference};" ]
    else
      [ ];
}

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
  # A client with more than one reflector has somewhere else to go: BFD down
  # must drop the dead reflector's routes at once (`bfd on`) rather than keep
  # them for the graceful restart time (`bfd graceful`), which would leave
  # the preferred but dead path installed for that long. A restart of the
  # reflector then also moves traffic to the other one for the restart, and
  # back (bench/two_reflectors.py measures both).
  hasAlternative = spec: spec.role == "client" && length (attrValues spec.links) > 1;

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

# ExecStart of bird.service with graceful restart on (builtins only; the lab
# applies the same rule in python/src/ibgp_tunnel/lab/up.py). Called as
# `<script> <bird command line>`; it runs that command, with -R only when the
# kernel holds routes a previous BIRD left (`proto bird`, any table).
#
# -R (graceful restart recovery) keeps those routes in the kernel until every
# BGP neighbour that took part has sent End-of-RIB or has come up without
# graceful restart, and tells the neighbours our forwarding state was kept.
# A neighbour that is down sends neither: BIRD's only other ways out are the
# channel closing and `graceful restart wait` running out, and no birdc
# command ends the recovery. With nothing in the kernel (a boot, or after
# `birdc down`) there is nothing to keep: -R would only hold every kernel
# route for that wait and tell the neighbours to keep forwarding to routes
# this host no longer has. When `ip` cannot tell, recover (the safe side:
# routes kept, at worst the wait).
{ ip }:
''
  set -u
  [ "$#" -gt 0 ] || { echo "usage: $0 BIRD-COMMAND..." >&2; exit 64; }
  if ! v4=$(${ip} -4 route show table all proto bird 2>/dev/null) \
    || ! v6=$(${ip} -6 route show table all proto bird 2>/dev/null) \
    || [ -n "$v4$v6" ]; then
    exec "$@" -R
  fi
  exec "$@"
''

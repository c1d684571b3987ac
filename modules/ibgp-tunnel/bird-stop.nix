# ExecStop of bird.service with graceful restart on (builtins only, so the lab
# can render the same script). Called as `<script> %n`: systemd passes the
# unit's own name, so it is written nowhere else.
#
# `birdc graceful restart` makes BIRD exit keeping its routes in the kernel
# and its neighbours forwarding, for the `bird -R` that follows: right for a
# restart, wrong for a stop for good, which would leave those routes in the
# kernel forever. While ExecStop runs, systemd's job for the unit says which
# it is: a restart job (`systemctl restart`, `try-restart`, and
# switch-to-configuration with stopIfChanged = false) keeps type "restart"
# until its stop half is done; anything else (`systemctl stop`, shutdown,
# stop in the old generation during a switch) is a stop. When systemctl cannot
# tell, stop cleanly: a restart then costs a session reset, never stale routes.
{
  birdc,
  systemctl,
}:
''
  set -u
  unit=''${1:?usage: $0 UNIT (pass %n)}
  job=
  while read -r _id name type _state; do
    if [ "$name" = "$unit" ]; then
      job=$type
    fi
  done < <(${systemctl} list-jobs --no-legend "$unit" 2>/dev/null || true)
  case "$job" in
    restart | try-restart)
      exec ${birdc} graceful restart
      ;;
    *)
      exec ${birdc} down
      ;;
  esac
''

# The tuning fields of the table (../fields.nix): [tuning] /
# services.ibgpTunnel.tuning.<option>. Every default is defaults.toml's
# [tuning] (base/defaults.toml stays their one source; a plan's [tuning]
# overrides single keys, plan/host.nix).
#
# shapeOnly: the plan models check only the shape (a 32-bit number), so that a
#   value out of BIRD's range is a finding of the core's tuning rules
#   (checks.nix tuningProblems, which also relate the keys), not a schema error.
# optionType: the option's type when the grammar cannot say it (a function of
#   lib.types).
let
  defaults = (import ../../base/defaults.nix).tuning;
  number = f: { type = "int"; shapeOnly = true; token = "tuning.${f.option}"; } // f;
  timer = f: number f // { nullable = true; };
in
map (f: { optionPath = [ "tuning" ]; roles = [ "reflector" "client" ]; default = defaults.${f.option}; } // f) [
  {
    key = "bfd";
    option = "bfd";
    type = "bool";
    description = "BFD on the iBGP sessions: a dead tunnel is noticed in bfdIntervalMs x bfdMultiplier instead of the BGP hold time (240 s by default). Opens UDP 4784 (multihop BFD) on the tunnels. With gracefulRestart on, BFD down starts a graceful restart (`bfd graceful`): a restarting BIRD and a dead tunnel look alike, so the routes go after gracefulRestartTime.";
  }
  (number {
    key = "bfd_interval_ms";
    option = "bfdIntervalMs";
    description = "BFD transmit and receive interval in milliseconds.";
  })
  (number {
    key = "bfd_multiplier";
    option = "bfdMultiplier";
    description = "Missed BFD packets before the session is declared down.";
  })
  {
    key = "graceful_restart";
    option = "gracefulRestart";
    type = "bool";
    description = "Graceful restart on all BGP sessions and the kernel protocols, and a bird.service that starts with `bird -R` when the kernel holds routes a previous BIRD left (after a boot or `birdc down` there is nothing to recover, and -R would hold every kernel route until a down neighbour's End-of-RIB or graceful_restart_wait) and, when it is restarted (`systemctl restart`, or `nixos-rebuild switch`, which restarts it in one step), stops with `birdc graceful restart`, so restarting BIRD on one end keeps both ends forwarding. A stop for good (`systemctl stop`, shutdown) runs `birdc down`: BIRD's routes leave the kernel and the neighbours withdraw them at once.";
  }
  (number {
    key = "graceful_restart_time";
    option = "gracefulRestartTime";
    description = "Seconds a neighbour keeps our routes while we restart. With BFD, also how long a dead tunnel's routes stay before they are withdrawn: keep it just above a BIRD restart.";
  })
  (number {
    key = "graceful_restart_wait";
    option = "gracefulRestartWait";
    description = "Seconds a restarted BIRD waits for its neighbours' End-of-RIB before it updates the kernel.";
  })
  (timer {
    key = "long_lived_stale_time";
    option = "longLivedStaleTime";
    description = "Long-lived graceful restart: seconds stale routes are kept (depreferenced) after the graceful restart time. null or 0 turns it off (the default: with BFD it would keep a dead tunnel's routes, which still win in the kernel, that much longer).";
  })
  (timer {
    key = "connect_delay_time";
    option = "connectDelayTime";
    description = "Seconds from start to the first connection attempt. null keeps BIRD's default.";
  })
  (timer {
    key = "connect_retry_time";
    option = "connectRetryTime";
    description = "Seconds between connection attempts. null keeps BIRD's default.";
  })
  (timer {
    key = "error_wait_time";
    option = "errorWaitTime";
    type = "intList";
    length = 2;
    example = [ 1 2 ];
    description = "Minimum and maximum seconds before a session restarts after an error (minimum <= maximum). null keeps BIRD's default (60, 300).";
  })
  (timer {
    key = "hold_time";
    option = "holdTime";
    # BIRD: "Hold time must be in range 3-65535 or zero".
    optionType = types: types.either (types.enum [ 0 ]) (types.ints.between 3 65535);
    description = "BGP hold time in seconds: 0 (no keepalives, never time out) or 3 to 65535. null keeps BIRD's default (240).";
  })
  (timer {
    key = "keepalive_time";
    option = "keepaliveTime";
    description = "BGP keepalive interval in seconds, at most the hold time. null keeps BIRD's default.";
  })
  (timer {
    key = "import_limit";
    option = "importLimit";
    description = "Most routes accepted per BGP session and address family. null: no limit.";
  })
  {
    key = "import_limit_action";
    option = "importLimitAction";
    type = "enum";
    token = "importLimitAction";
    description = "What BIRD does when a session exceeds importLimit.";
  }
]

# The systemd sandbox of this module's own helper units (the ROA files'
# refresh, the latency timer, the RTR JSON refresh and the local stayrtr):
# nothing writable but what a unit adds with ReadWritePaths, no capability, no
# privilege gain, the network and BIRD's control socket only. A unit that
# needs more says so beside its own `sandbox // { ... }`.
{
  ProtectSystem = "strict";
  ProtectHome = true;
  PrivateTmp = true;
  PrivateDevices = true;
  NoNewPrivileges = true;
  CapabilityBoundingSet = "";
  AmbientCapabilities = "";
  # AF_UNIX: BIRD's control socket (connect() needs no writable mount) and
  # name resolution; AF_INET/AF_INET6: downloads, pings, the RTR listener.
  RestrictAddressFamilies = [
    "AF_UNIX"
    "AF_INET"
    "AF_INET6"
  ];
  RestrictNamespaces = true;
  RestrictRealtime = true;
  RestrictSUIDSGID = true;
  LockPersonality = true;
  MemoryDenyWriteExecute = true;
  ProtectKernelTunables = true;
  ProtectKernelModules = true;
  ProtectKernelLogs = true;
  ProtectControlGroups = true;
  ProtectClock = true;
  ProtectHostname = true;
  ProtectProc = "invisible";
  SystemCallArchitectures = "native";
  SystemCallFilter = [
    "@system-service"
    "~@privileged"
  ];
}

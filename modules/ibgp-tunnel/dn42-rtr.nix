# services.ibgpTunnel.dn42.roa.source = "rtr": RPKI over RTR. A timer keeps
# DN42's ROA JSON as the last good file (the ROA files' rules: https, size,
# grammar, rename), a local stayrtr serves it on the loopback, and bird.conf's
# `protocol rpki` blocks (rendered by the core) ask it and any other caches.
# nixpkgs has the stayrtr package but no NixOS module for it: the unit is here.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  core = import ../lib;
  cfg = config.services.ibgpTunnel;
  artifacts = core.render cfg;
  rtr = artifacts.dn42Rtr;
  planErrors = if cfg.plan == null then [ ] else builtins.filter (f: f.severity == "error") (core.planProblems (core.readPlan cfg.plan));
  deploy = cfg.enable && core.problems cfg == [ ] && planErrors == [ ];

  refreshUnit = "ibgp-tunnel-dn42-rtr";
  cacheUnit = "ibgp-tunnel-stayrtr";
  # The ROA directory's owner, as the ROA files' refresh (./dn42.nix): BIRD's
  # user, which nixpkgs' services.bird creates.
  user = "bird";
  dir = if rtr == null then null else builtins.dirOf rtr.jsonFile;
  update = pkgs.writeShellScript "dn42-rtr-update" rtr.script;
  sandbox = import ./unit-sandbox.nix;
in
{
  config = lib.mkIf (deploy && rtr != null) {
    systemd.tmpfiles.rules = [ "d ${dir} 0755 ${user} ${user} -" ];

    systemd.services.${refreshUnit} = {
      description = "Refresh DN42's ROA JSON for the local RTR cache";
      after = [ "network-online.target" ];
      wants = [ "network-online.target" ];
      path = [
        pkgs.curl
        pkgs.jq
        pkgs.diffutils
        pkgs.coreutils
        pkgs.gawk
      ];
      environment.ROA_MAX_BYTES = toString rtr.maxBytes;
      serviceConfig = sandbox // {
        Type = "oneshot";
        ExecStart = "${update} ${lib.concatStringsSep " " rtr.arguments}";
        User = user;
        Group = user;
        UMask = "0022";
        ReadWritePaths = [ dir ];
        # Backstop for the script's own cap (ROA_MAX_BYTES), as the ROA files'.
        LimitFSIZE = toString (2 * rtr.maxBytes);
      };
    };
    systemd.timers.${refreshUnit} = {
      wantedBy = [ "timers.target" ];
      timerConfig = {
        OnBootSec = "30s";
        OnUnitActiveSec = rtr.interval;
      };
    };

    # The cache: rereads the last good file every refresh interval and tells
    # BIRD (RTR Serial Notify) what changed; a file that does not load leaves
    # it serving what it had. After one refresh, so that on first boot it
    # starts with a file (stayrtr reads a missing one only at its next
    # refresh); BIRD does not wait for it (it retries its caches every 30 s
    # and keeps their last table meanwhile). -checktime off: the refresh
    # decides what is current (a stalled generator leaves the last good file,
    # as with the ROA files).
    systemd.services.${cacheUnit} = {
      description = "Local RTR cache (stayrtr) serving DN42's ROAs to BIRD";
      wantedBy = [ "multi-user.target" ];
      wants = [ "${refreshUnit}.service" ];
      after = [
        "network.target"
        "${refreshUnit}.service"
      ];
      serviceConfig = sandbox // {
        ExecStart = lib.concatStringsSep " " [
          "${pkgs.stayrtr}/bin/stayrtr"
          "-bind ${rtr.bind}"
          "-cache ${rtr.jsonFile}"
          "-refresh ${toString rtr.refreshSeconds}"
          "-checktime=false"
          "-metrics.addr="
          "-loglevel warn"
        ];
        Restart = "always";
        RestartSec = "5s";
        DynamicUser = true;
        ReadOnlyPaths = [ dir ];
        RestrictAddressFamilies = [
          "AF_INET"
          "AF_INET6"
        ];
      };
    };
  };
}

# services.ibgpTunnel for DN42 peering: each peer's WireGuard tunnel and
# communities (added to the dn42Peers submodule declared in ./options.nix),
# our DN42 WireGuard key, and the ROA files with their refresh timer.
{
  config,
  lib,
  options,
  pkgs,
  ...
}:
let
  inherit (lib) mkIf mkMerge mkOption types literalExpression;
  core = import ../lib;
  dn42Defaults = (import ../lib).dn42Defaults;
  tokens = core.tokens;
  cfg = config.services.ibgpTunnel;
  useSops = cfg.sops.file != null;

  typeOf = kind: types.strMatching kind.regex // { description = "string, ${kind.expect}"; };

  sopsSecretPath = name: if useSops && config ? sops && config.sops.secrets ? ${name} then config.sops.secrets.${name}.path else null;

  # publicKey, endpoint, linkLocal, ...: the dn42Tunnel fields of
  # modules/lib/grammar/fields.nix.
  tunnelModule.options = import ./field-options.nix lib "dn42Tunnel" { };

  peerModule = {
    # The peer's other options are options.nix's (fields.nix).
    options = {
      tunnel = mkOption {
        type = types.nullOr (types.submodule tunnelModule);
        default = null;
        description = "The peer's WireGuard tunnel, run by this module on `interface` (default dn42-<peer>). null: the interface is configured elsewhere.";
      };
    };
  };

  artifacts = core.render cfg;
  roa = artifacts.dn42Roa;
  secretNames = artifacts.secretNames.dn42;
  # As ./config.nix: nothing is deployed while a problem or a plan error stands.
  planErrors = if cfg.plan == null then [ ] else builtins.filter (f: f.severity == "error") (core.planProblems (core.readPlan cfg.plan));
  deploy = cfg.enable && core.problems cfg == [ ] && planErrors == [ ];

  # nixpkgs' services.bird runs bird.service; its wireguard module one
  # wireguard-<interface>.service per interface.
  birdUnit = "bird.service";
  dn42TunnelUnits = map (name: "wireguard-${name}.service") (
    builtins.filter (name: !(builtins.elem name (map (l: l.interface) (builtins.attrValues cfg.links)))) (builtins.attrNames artifacts.wireguard)
  );

  roaUpdate = pkgs.writeShellScript "dn42-roa-update" roa.script;
  # nixpkgs' services.bird creates this user and group.
  roaUser = "bird";
  roaDirs = lib.unique (map builtins.dirOf (if roa == null then [ ] else roa.files));
  roaUnit = "ibgp-tunnel-dn42-roa";

  # latency = "auto" (null without such a peer).
  latency = artifacts.dn42Latency or null;
  latencyUpdate = pkgs.writeShellScript "dn42-latency-update" latency.script;
  latencyDirs = lib.unique (map builtins.dirOf (if latency == null then [ ] else latency.files));
  latencyUnit = "ibgp-tunnel-dn42-latency";
  sandbox = import ./unit-sandbox.nix;
in
{
  options.services.ibgpTunnel = {
    dn42Peers = mkOption {
      type = types.attrsOf (types.submodule peerModule);
    };
    dn42 = {
      privateKeyFile = mkOption {
        type = typeOf tokens.runtimePath;
        default = if sopsSecretPath dn42Defaults.secret_private_key != null then sopsSecretPath dn42Defaults.secret_private_key else dn42Defaults.privateKeyFile;
        defaultText = literalExpression ''config.sops.secrets."wg_dn42/private_key".path'';
        description = "Our WireGuard private key for every DN42 tunnel (`ibgp-tunnel keys` writes `wg_dn42/private_key`).";
      };
      # enable, ipv4Url, ipv4File, interval, ...: the dn42Roa fields of fields.nix.
      roa = import ./field-options.nix lib "dn42Roa" { };
    };
  };

  config = mkMerge [
    (mkIf (deploy && roa != null) {
      # bird.conf includes the ROA files: the build-time check parses it with
      # empty stubs (the sandbox has no download), and the files exist (empty
      # until the first download; tmpfiles never truncates an existing one)
      # before BIRD first starts.
      services.bird.preCheckConfig = roa.preCheckConfig;
      # Owned by the unit's user: it writes a temporary file beside each one
      # and renames it over (d and f also fix the owner of what an older
      # version of this module made as root).
      systemd.tmpfiles.rules = map (dir: "d ${dir} 0755 ${roaUser} ${roaUser} -") roaDirs ++ map (file: "f ${file} 0644 ${roaUser} ${roaUser} -") roa.files;

      systemd.services.${roaUnit} = {
        description = "Refresh DN42's ROA files for BIRD";
        after = [
          "network-online.target"
          birdUnit
        ];
        wants = [ "network-online.target" ];
        path = [
          pkgs.curl
          pkgs.diffutils
          pkgs.coreutils
          pkgs.gawk
          config.services.bird.package
        ];
        environment.ROA_MAX_BYTES = toString roa.maxBytes;
        # The config BIRD runs (nixpkgs' services.bird): each download is
        # checked inside it before it is installed.
        environment.BIRD_CONF = "/etc/bird/bird.conf";
        serviceConfig = sandbox // {
          Type = "oneshot";
          ExecStart = "${roaUpdate} ${lib.concatStringsSep " " roa.arguments}";
          # Who: BIRD's own user (nixpkgs bird.nix: User/Group bird, control
          # socket /run/bird/bird.ctl, mode 0660). The job is to change what
          # BIRD reads and make it reload, exactly that user's power: a
          # separate account would need group bird for the socket, which
          # gives it the same control over BIRD. Not DynamicUser: its state
          # lives under /var/lib/private (0700), which BIRD could not read,
          # and its files would belong to a recycled UID.
          User = roaUser;
          Group = roaUser;
          UMask = "0022";
          # What: the ROA files' directories (tmpfiles makes them), the
          # network and BIRD's socket (./unit-sandbox.nix). Not
          # StateDirectory: the files' place is an option (any runtime
          # path), and ReadWritePaths with the tmpfiles rules covers every
          # choice alike.
          ReadWritePaths = roaDirs;
          # Backstop for the script's own cap (ROA_MAX_BYTES): no file the
          # unit writes can grow past twice that (RLIMIT_FSIZE).
          LimitFSIZE = toString (2 * roa.maxBytes);
        };
      };
      systemd.timers.${roaUnit} = {
        wantedBy = [ "timers.target" ];
        timerConfig = {
          OnBootSec = "30s";
          OnUnitActiveSec = roa.interval;
        };
      };
    })

    (mkIf (deploy && latency != null) {
      # bird.conf includes each measured class: the build-time check gets a
      # stub with the initial class, the host the file itself before BIRD
      # first starts (tmpfiles writes `f` contents only into a missing file).
      services.bird.preCheckConfig = latency.preCheckConfig;
      systemd.tmpfiles.rules =
        map (dir: "d ${dir} 0755 ${roaUser} ${roaUser} -") latencyDirs
        ++ map (i: "f ${i.file} 0644 ${roaUser} ${roaUser} - ${i.text}") latency.initial;

      systemd.services.${latencyUnit} = {
        description = "Measure DN42 peers' latency and keep BIRD's latency class current";
        after = [ birdUnit ] ++ dn42TunnelUnits;
        path = [
          pkgs.iputils
          pkgs.coreutils
          pkgs.gawk
          pkgs.gnused
          pkgs.gnugrep
          config.services.bird.package
        ];
        environment.BIRD_CONF = "/etc/bird/bird.conf";
        serviceConfig = sandbox // {
          Type = "oneshot";
          ExecStart = "${latencyUpdate} ${lib.concatStringsSep " " latency.arguments}";
          # BIRD's user, as the ROA refresh (see there): its job is changing
          # what BIRD reads and making it reload.
          User = roaUser;
          Group = roaUser;
          UMask = "0022";
          ReadWritePaths = latencyDirs;
          # ping bound to the tunnel (-I): a raw ICMP socket, netlink, and
          # no ~@privileged filter.
          CapabilityBoundingSet = [ "CAP_NET_RAW" ];
          AmbientCapabilities = [ "CAP_NET_RAW" ];
          RestrictAddressFamilies = sandbox.RestrictAddressFamilies ++ [ "AF_NETLINK" ];
          SystemCallFilter = [ "@system-service" ];
        };
      };
      systemd.timers.${latencyUnit} = {
        wantedBy = [ "timers.target" ];
        timerConfig = {
          OnBootSec = "1min";
          OnUnitActiveSec = latency.interval;
        };
      };
    })

    (lib.optionalAttrs (options ? sops) {
      sops.secrets = mkIf (cfg.enable && useSops && secretNames != null) (
        lib.listToAttrs (
          map (name: {
            inherit name;
            value = {
              sopsFile = cfg.sops.file;
              restartUnits = dn42TunnelUnits;
            };
          }) ([ secretNames.privateKey ] ++ builtins.attrValues secretNames.psk)
        )
      );
    })
  ];
}

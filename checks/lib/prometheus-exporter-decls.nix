# services.prometheus.exporters.{bird,wireguard,node} at nixpkgs' types, imported by
# ./nixos-option-decls.nix. From nixos/modules/services/monitoring/prometheus/
# exporters.nix (mkExporterOpts, mkSubModule, mkExporterConf) and
# exporters/{bird,wireguard,node}.nix (extraOpts, serviceOpts); the versions read are
# in docs/nixos-options.md. What mkExporterConf and the two serviceOpts define
# for an enabled exporter (its unit's ExecStart, group, firewall rule) is
# mirrored as UPSTREAM DEFINITIONS, so tests see the flags the exporters run
# with; the hardening settings are not.
{
  lib,
  config,
  pkgs,
  ...
}:
let
  inherit (lib) mkOption types;
  cfg = config.services.prometheus.exporters;

  # exporters.nix mkExporterOpts, plus the submodule's openFirewall defaults.
  exporter =
    name: port: extraOpts:
    mkOption {
      type = types.submodule [
        {
          options = {
            enable = lib.mkEnableOption "the prometheus ${name} exporter";
            port = mkOption {
              type = types.port;
              default = port;
            };
            listenAddress = mkOption {
              type = types.str;
              default = "0.0.0.0";
            };
            extraFlags = mkOption {
              type = types.listOf types.str;
              default = [ ];
            };
            openFirewall = mkOption {
              type = types.bool;
              default = false;
            };
            firewallFilter = mkOption {
              type = types.nullOr types.str;
              default = null;
            };
            firewallRules = mkOption {
              type = types.nullOr types.lines;
              default = null;
            };
            user = mkOption {
              type = types.str;
              default = "${name}-exporter";
            };
            group = mkOption {
              type = types.str;
              default = "${name}-exporter";
            };
          }
          // extraOpts;
        }
        (
          { config, ... }:
          lib.mkIf config.openFirewall {
            firewallFilter = lib.mkDefault "-p tcp -m tcp --dport ${toString config.port}";
            firewallRules = lib.mkDefault ''tcp dport ${toString config.port} accept comment "${name}-exporter"'';
          }
        )
      ];
      default = { };
    };

  # exporters.nix mkExporterConf, reduced to the unit's identity and the
  # firewall (nftables: extraInputRules; iptables: extraCommands, not declared).
  exporterConf =
    name: serviceConfig:
    let
      conf = cfg.${name};
    in
    lib.mkIf conf.enable {
      networking.firewall.extraInputRules = lib.mkIf (
        conf.openFirewall && config.networking.nftables.enable
      ) conf.firewallRules;
      systemd.services."prometheus-${name}-exporter" = {
        wantedBy = [ "multi-user.target" ];
        after = [ "network.target" ];
        serviceConfig = {
          DynamicUser = lib.mkDefault true;
          User = lib.mkDefault conf.user;
          Group = conf.group;
        }
        // serviceConfig;
      };
    };
in
{
  options.services.prometheus.exporters = {
    bird = exporter "bird" 9324 {
      birdVersion = mkOption {
        type = types.enum [
          1
          2
        ];
        default = 2;
      };
      birdSocket = mkOption {
        type = types.path;
        default = "/run/bird/bird.ctl";
      };
      newMetricFormat = mkOption {
        type = types.bool;
        default = true;
      };
    };
    wireguard = exporter "wireguard" 9586 {
      verbose = lib.mkEnableOption "verbose logging mode for prometheus-wireguard-exporter";
      wireguardConfig = mkOption {
        type = with types; nullOr (either path str);
        default = null;
      };
      interfaces = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      singleSubnetPerField = mkOption {
        type = types.bool;
        default = false;
      };
      withRemoteIp = mkOption {
        type = types.bool;
        default = false;
      };
      latestHandshakeDelay = mkOption {
        type = types.bool;
        default = false;
      };
      prependSudo = mkOption {
        type = types.bool;
        default = false;
      };
    };
    node = exporter "node" 9100 {
      enabledCollectors = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      disabledCollectors = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
    };
  };

  config = lib.mkMerge [
    # UPSTREAM DEFINITION: exporters/bird.nix serviceOpts (current shape:
    # SupplementaryGroups "bird"; older versions said "bird2").
    (exporterConf "bird" {
      SupplementaryGroups = "bird";
      ExecStart = lib.concatStringsSep " " (
        [
          "${pkgs.prometheus-bird-exporter}/bin/bird_exporter"
          "-web.listen-address ${cfg.bird.listenAddress}:${toString cfg.bird.port}"
          "-bird.socket ${cfg.bird.birdSocket}"
          "-bird.v2=${if cfg.bird.birdVersion == 2 then "true" else "false"}"
          "-format.new=${if cfg.bird.newMetricFormat then "true" else "false"}"
        ]
        ++ cfg.bird.extraFlags
      );
      RestrictAddressFamilies = [ "AF_UNIX" ];
    })
    # UPSTREAM DEFINITION: exporters/wireguard.nix serviceOpts.
    (exporterConf "wireguard" {
      AmbientCapabilities = [ "CAP_NET_ADMIN" ];
      CapabilityBoundingSet = [ "CAP_NET_ADMIN" ];
      ExecStart = lib.concatStringsSep " " (
        [
          "${pkgs.prometheus-wireguard-exporter}/bin/prometheus_wireguard_exporter"
          "-p ${toString cfg.wireguard.port}"
          "-l ${cfg.wireguard.listenAddress}"
        ]
        ++ map (i: "-i ${i}") cfg.wireguard.interfaces
        ++ cfg.wireguard.extraFlags
      );
      RestrictAddressFamilies = [ "AF_NETLINK" ];
    })
    # UPSTREAM DEFINITION: exporters/node.nix serviceOpts (its own user, not
    # DynamicUser; whitespace joined to one line).
    (exporterConf "node" {
      DynamicUser = false;
      ExecStart = lib.concatStringsSep " " (
        [ "${pkgs.prometheus-node-exporter}/bin/node_exporter" ]
        ++ map (x: "--collector." + x) cfg.node.enabledCollectors
        ++ map (x: "--no-collector." + x) cfg.node.disabledCollectors
        ++ [ "--web.listen-address ${cfg.node.listenAddress}:${toString cfg.node.port}" ]
        ++ cfg.node.extraFlags
      );
    })
  ];
}

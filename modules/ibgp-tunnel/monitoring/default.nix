# services.ibgpTunnel.monitoring: nixpkgs' Prometheus exporters for BIRD and
# WireGuard (and the node exporter's textfile collector for the DN42 latency
# timer's metrics), and alerting rules for this host derived from its spec and plan.
{ config, lib, ... }:
let
  inherit (lib) mkIf mkMerge mkOption types literalExpression;
  core = import ../../lib;
  cfg = config.services.ibgpTunnel;
  mon = cfg.monitoring;
  # As ../dn42.nix: the latency unit exists only on a deployable host.
  planErrors = if cfg.plan == null then [ ] else builtins.filter (f: f.severity == "error") (core.planProblems (core.readPlan cfg.plan));
  deploy = cfg.enable && core.problems cfg == [ ] && planErrors == [ ];
  latency = if deploy then (core.render cfg).dn42Latency or null else null;
  # dn42-latency-update.sh writes dn42-latency.prom beside its first file.
  latencyDir = builtins.dirOf (builtins.head latency.files);
  fromPlan = import ./expected-routes.nix (core.readPlan cfg.plan) cfg.hostName;
  count =
    family:
    mkOption {
      type = types.ints.unsigned;
      default = 0;
      description = "Fewest ${family} routes BIRD should have in the kernel.";
    };
in
{
  options.services.ibgpTunnel.monitoring = {
    enable = lib.mkEnableOption "Prometheus exporters for BIRD (sessions, BFD, routes; services.prometheus.exporters.bird) and WireGuard (handshakes; services.prometheus.exporters.wireguard)";

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = "Open the exporters' ports (BIRD 9324, WireGuard 9586, node 9100 with `latencyTextfile`) to every interface. Off by default: open the ports on the interface your Prometheus scrapes from yourself (networking.firewall.interfaces.<name>.allowedTCPPorts). Never through a tunnel: the module drops these ports on every tunnel interface, DN42's traffic arrives there.";
    };

    latencyTextfile = mkOption {
      type = types.bool;
      default = true;
      description = "With a DN42 peer's `latency = \"auto\"`: run nixpkgs' node exporter (port 9100) with its textfile collector reading the latency timer's `dn42-latency.prom` (metrics `ibgp_tunnel_dn42_latency_class` and `ibgp_tunnel_dn42_latency_rtt_seconds`, label `peer`). Off when you run your own node exporter: point its textfile collector there (`--collector.textfile.directory=/var/lib/ibgp-tunnel/dn42-latency`).";
    };

    instance = mkOption {
      type = types.str;
      default = "${cfg.hostName}(:[0-9]+)?";
      defaultText = literalExpression ''"''${config.services.ibgpTunnel.hostName}(:[0-9]+)?"'';
      description = "Regular expression for the `instance` label your Prometheus gives this host's exporters: the alert rules select this host's series with it.";
    };

    expectedKernelRoutes = mkOption {
      type = types.submodule {
        options = {
          ipv4 = count "IPv4";
          ipv6 = count "IPv6";
        };
      };
      default = if cfg.plan != null then fromPlan else { };
      defaultText = literalExpression "what the plan makes this host install: the announcements it learns over iBGP, kept by its import and kernel-export sets";
      description = "Fewest routes BIRD should have in this host's kernel, per family; below it for 5 minutes, IbgpTunnelKernelRoutesMissing fires. 0 leaves the rule out. Raise it by the DN42 routes you count on.";
    };

    alertRules = mkOption {
      type = types.attrsOf types.anything;
      readOnly = true;
      default = import ./alert-rules.nix {
        inherit (cfg) hostName;
        inherit (mon) instance expectedKernelRoutes;
        spec = cfg;
      };
      defaultText = literalExpression "this host's rule group";
      description = "This host's Prometheus rule group (session, BFD, handshake, kernel-route and import-limit alerts). For the server: `services.prometheus.ruleFiles = [ (pkgs.writeText \"ibgp-tunnel.rules.json\" (builtins.toJSON { groups = [ nodes.vps.config.services.ibgpTunnel.monitoring.alertRules ]; })) ];`, or the flake's `lib.alertRules self.nixosConfigurations` for every host at once.";
    };
  };

  config = mkIf (cfg.enable && mon.enable) (mkMerge [
  {
    services.prometheus.exporters.bird = {
      enable = true;
      # bird_exporter's -bird.v2 is the multi-channel protocol BIRD 3 speaks
      # too (its `show protocols all` parses: checked against 3.1.8). The
      # module's enum stops at 2 for that reason.
      birdVersion = 2;
      birdSocket = "/run/bird/bird.ctl";
      newMetricFormat = true;
      inherit (mon) openFirewall;
    };
    # Older nixpkgs gave the exporter group "bird2", which no longer exists:
    # services.bird runs as bird:bird and its socket is 0660 bird:bird.
    systemd.services.prometheus-bird-exporter.serviceConfig.SupplementaryGroups = lib.mkForce [ "bird" ];

    services.prometheus.exporters.wireguard = {
      enable = true;
      interfaces = lib.unique (map (link: link.interface) (builtins.attrValues cfg.links));
      inherit (mon) openFirewall;
    };
  }

  (mkIf (mon.latencyTextfile && latency != null) {
    # The textfile collector is on by default; the flag says where. The
    # directory is 0755 and the file 0644 (the timer's UMask 0022): the
    # exporter's own user reads it, it writes nothing there.
    services.prometheus.exporters.node = {
      enable = true;
      enabledCollectors = [ "textfile" ];
      extraFlags = [ "--collector.textfile.directory=${latencyDir}" ];
      inherit (mon) openFirewall;
    };
  })
  ]);
}

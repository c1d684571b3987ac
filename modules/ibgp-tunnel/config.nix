# The adapter: render the host spec with the pure core and hand each
# artifact to the NixOS module that deploys it.
{ config, lib, options, ... }:
let
  inherit (lib) mkIf mkMerge mkDefault;
  core = import ../lib;
  cfg = config.services.ibgpTunnel;
  artifacts = core.render cfg;
  useSops = cfg.sops.file != null;
  problems = core.problems cfg;
  # The whole plan's rules, the same `ibgp-tunnel check` reports (TOML paths).
  planFindings = if cfg.plan == null then [ ] else core.planProblems (core.readPlan cfg.plan);
  planErrors = builtins.filter (f: f.severity == "error") planFindings;
  planFinding = f: "${toString cfg.plan}: ${f.path}: ${f.message}";
  # With problems, only the assertions are defined: they report every problem
  # at once instead of the first type error deep inside another module.
  deploy = cfg.enable && problems == [ ] && planErrors == [ ];

  wireguardUnits = map (name: "wireguard-${name}.service") (builtins.attrNames artifacts.wireguard);

  sopsSecrets = lib.listToAttrs (
    map (name: {
      inherit name;
      value = {
        sopsFile = cfg.sops.file;
        restartUnits = wireguardUnits;
      };
    }) ([ artifacts.secretNames.privateKey ] ++ builtins.attrValues artifacts.secretNames.psk)
  );
in
{
  config = mkMerge [
    (mkIf cfg.enable {
      warnings = map planFinding (builtins.filter (f: f.severity == "warning") planFindings);
      assertions =
        map (p: {
          assertion = false;
          message = "${p.path} ${p.message}";
        }) problems
        ++ map (f: {
          assertion = false;
          message = planFinding f;
        }) planErrors
        ++ [
          {
            assertion = cfg.privateKey == null;
            message = "services.ibgpTunnel.privateKey is set: a key written as a string lands in the world-readable Nix store. Put it in a file (or a sops-nix secret) and set services.ibgpTunnel.privateKeyFile.";
          }
          {
            assertion = !useSops || options ? sops;
            message = "services.ibgpTunnel.sops.file is set but sops-nix is not imported: add sops-nix.nixosModules.sops to the host's modules, or unset sops.file and set privateKeyFile/presharedKeyFile.";
          }
          {
            assertion = !cfg.nftables.enable || config.networking.nftables.enable;
            message = "services.ibgpTunnel renders nftables rules but networking.nftables.enable is false: enable it, or set services.ibgpTunnel.nftables.enable = false and write the forward/NAT rules yourself.";
          }
        ];
    })

    (mkIf deploy {
      networking.wireguard.interfaces = artifacts.wireguard;

      services.bird = {
        enable = true;
        config = artifacts.birdConfig;
      };

      boot.kernel.sysctl = artifacts.sysctl;

      networking.firewall.allowedUDPPorts = artifacts.allowedUDPPorts;
      networking.firewall.interfaces = artifacts.firewallInterfaces;
    })

    # Stopping or restarting BIRD must not send Cease (which ends the neighbours'
    # graceful restart), and the restarted BIRD must recover (-R) to keep it.
    (mkIf (deploy && cfg.tuning.gracefulRestart) {
      systemd.services.bird.serviceConfig = {
        ExecStart = lib.mkForce "${lib.getBin config.services.bird.package}/bin/bird -R -c /etc/bird/bird.conf";
        ExecStop = lib.mkForce "${lib.getBin config.services.bird.package}/bin/birdc graceful restart";
      };
    })

    (mkIf (cfg.enable && cfg.nftables.enable) {
      networking.nftables.enable = mkDefault true;
    })

    (mkIf (deploy && cfg.nftables.enable) {
      networking.nftables.tables.${artifacts.nftables.table} = {
        inherit (artifacts.nftables) family content;
      };
      # Used when networking.firewall.filterForward is on (the seed's forward
      # chain); harmless otherwise.
      networking.firewall.extraForwardRules = artifacts.nftables.forwardRules;
      networking.firewall.extraReversePathFilterRules = artifacts.nftables.reversePathRules;
    })

    (lib.optionalAttrs (options ? sops) {
      sops.secrets = mkIf (cfg.enable && useSops) sopsSecrets;
    })
  ];
}

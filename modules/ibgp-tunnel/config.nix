# The adapter: render the host spec with the pure core and hand each
# artifact to the NixOS module that deploys it.
{
  config,
  lib,
  options,
  pkgs,
  ...
}:
let
  inherit (lib) mkIf mkMerge;
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

  # Unit names, each written once. The services that read the key files:
  # networking.wireguard's script backend runs one wireguard-<interface>.service
  # per interface (its peer units are ordered after it); with useNetworkd,
  # systemd-networkd reads them. services.bird runs bird.service.
  keyReaders =
    if config.networking.wireguard.useNetworkd then
      [ "systemd-networkd" ]
    else
      map (name: "wireguard-${name}") (builtins.attrNames artifacts.wireguard);
  keyReaderUnits = map (name: "${name}.service") keyReaders;
  birdService = "bird";

  # With userborn or systemd-sysusers, sops-nix decrypts in this unit rather
  # than in the activation script (sops-nix modules/sops/default.nix).
  sopsService = "sops-install-secrets";
  sopsInUnit = useSops && options ? sops.useSystemdActivation && config.sops.useSystemdActivation;

  # NixOS itself defines net.ipv4.conf.all.forwarding = mkDefault false
  # (network-interfaces.nix), and a sysctl takes one definition per priority:
  # a second mkDefault would not evaluate. Just above mkDefault, so anything
  # the host sets by hand (100), and nat.nix (99), docker (98) or tailscale
  # (97), still wins without a conflict.
  sysctlDefault = lib.mkOverride 900;

  # ...which also means a host's own `= 0` (or nat/docker saying false) beats
  # ours without a conflict. The final value decides: sysctlOption takes
  # bools, ints and strings, so 0, false and "0" all turn forwarding off.
  forwardingKeys = builtins.filter (key: lib.hasSuffix ".forwarding" key) (builtins.attrNames artifacts.sysctl);
  isOff = value: builtins.elem value [ 0 false "0" ];
  forwardingOff = builtins.filter (key: isOff (config.boot.kernel.sysctl.${key} or null)) forwardingKeys;
  # A client's interfaces that take RAs are not known to the module (its WAN,
  # or the LAN when the home router is there): make the host say which. Not
  # with networkd, which handles RAs itself whatever the sysctl says.
  raUndecided = cfg.role == "client" && cfg.acceptRAInterfaces == null && config.networking.enableIPv6 && !config.networking.useNetworkd;
  raWarning = "services.ibgpTunnel turns on IPv6 forwarding, and the kernel then ignores router advertisements on every interface whose accept_ra is 1 (the default): an IPv6 address or default route learnt by SLAAC in the kernel expires. NixOS's dhcpcd (networking.useDHCP) handles RAs itself and is not affected, except on interfaces it leaves to the kernel (a static IPv6 or IPv4 address, or networking.dhcpcd.IPv6rs = false). If this client takes its IPv6 route from RAs in the kernel, name that interface: services.ibgpTunnel.acceptRAInterfaces = [ \"<interface>\" ] (accept_ra = 2 there; in a plan: accept_ra_interfaces). Otherwise set it to [ ] to silence this warning.";
  forwardingWarning = key: "services.ibgpTunnel needs boot.kernel.sysctl.\"${key}\" = 1, but it is ${builtins.toJSON config.boot.kernel.sysctl.${key}}: a definition elsewhere in this host's configuration (above priority 900, e.g. a plain `= 0`) wins over the module's. This host will not forward between the tunnels and ${if cfg.role == "client" then "its LAN" else "its uplink and DN42"}. Remove that definition, or set the key to 1 yourself.";

  upstreamBirdExecStart = "${lib.getExe' config.services.bird.package "bird"} -c /etc/bird/bird.conf";

  birdStart = pkgs.writeShellScript "bird-start" (
    import ./bird-start.nix {
      ip = lib.getExe' pkgs.iproute2 "ip";
    }
  );

  birdStop = pkgs.writeShellScript "bird-stop" (
    import ./bird-stop.nix {
      birdc = lib.getExe' config.services.bird.package "birdc";
      systemctl = lib.getExe' config.systemd.package "systemctl";
    }
  );

  sopsSecrets = lib.listToAttrs (
    map (name: {
      inherit name;
      value = {
        sopsFile = cfg.sops.file;
        restartUnits = keyReaderUnits;
      };
    }) ([ artifacts.secretNames.privateKey ] ++ builtins.attrValues artifacts.secretNames.psk)
  );
in
{
  config = mkMerge [
    (mkIf cfg.enable {
      warnings = map planFinding (builtins.filter (f: f.severity == "warning") planFindings) ++ lib.optionals deploy (map forwardingWarning forwardingOff ++ lib.optional raUndecided raWarning);
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
          # The module never switches the host's firewall backend: that
          # would silently drop networking.firewall.extraCommands and every
          # other iptables rule the host has. NixOS itself refuses
          # firewall.filterForward on iptables the same way.
          {
            assertion = !cfg.nftables.enable || config.networking.nftables.enable;
            message = "services.ibgpTunnel adds nftables rules (the `inet ibgp-tunnel` masquerade table, forward and reverse-path accepts for the tunnels), but this host uses the iptables firewall (networking.nftables.enable = false). Either set networking.nftables.enable = true (NixOS's firewall then runs on nftables: move any networking.firewall.extraCommands to extraInputRules/extraForwardRules), or set services.ibgpTunnel.nftables.enable = false and write the masquerade and forward rules yourself (e.g. in networking.firewall.extraCommands).";
          }
        ];
    })

    (mkIf deploy {
      networking.wireguard.interfaces = artifacts.wireguard;

      services.bird = {
        enable = true;
        # services.bird.config is types.lines: merged, our part goes first, so
        # the host's own text can call the functions it defines.
        config = if cfg.bird.standalone then artifacts.birdConfig else lib.mkBefore artifacts.birdConfig;
      };

      boot.kernel.sysctl = builtins.mapAttrs (_: sysctlDefault) artifacts.sysctl;

      networking.firewall.allowedUDPPorts = artifacts.allowedUDPPorts;
      networking.firewall.interfaces = artifacts.firewallInterfaces;
    })

    # A restart must not send Cease (which ends the neighbours' graceful
    # restart) and the restarted BIRD must recover (-R) the routes it left in
    # the kernel, and only then (./bird-start.nix: with none, as at boot, -R
    # would hold every kernel route until a down neighbour's End-of-RIB or
    # `graceful restart wait`); a stop for good must take BIRD's routes out of
    # the kernel (./bird-stop.nix tells them apart).
    # stopIfChanged = false: nixos-rebuild switch restarts a changed
    # bird.service in one `systemctl restart` (hitless) instead of stopping it
    # in the old generation and starting it in the new one.
    (mkIf (deploy && cfg.tuning.gracefulRestart) {
      systemd.services.${birdService} = {
        stopIfChanged = false;
        serviceConfig = {
          # Upstream's line (nixpkgs nixos/modules/services/networking/bird.nix:
          # `''${lib.getExe' cfg.package "bird"} -c /etc/bird/bird.conf`), run
          # by ./bird-start.nix, which appends -R when there is something to
          # recover. A forced value cannot read the one it replaces, so
          # the module-evaluation test compares this with upstream's line,
          # mirrored in checks/lib/nixos-option-decls.nix with the nixpkgs
          # revision it was read at: a change upstream (another config path,
          # a new flag) is a test failure, not a silently different unit.
          ExecStart = lib.mkForce "${birdStart} ${upstreamBirdExecStart}";
          ExecStop = lib.mkForce "${birdStop} %n";
        };
      };
    })

    (mkIf (deploy && sopsInUnit) {
      systemd.services = lib.genAttrs keyReaders (_: {
        after = [ "${sopsService}.service" ];
        wants = [ "${sopsService}.service" ];
      });
    })

    (mkIf (deploy && cfg.nftables.enable) {
      networking.nftables.tables.${artifacts.nftables.table} = {
        inherit (artifacts.nftables) family content;
      };
      # Used when networking.firewall.filterForward is on (the seed's forward
      # chain); harmless otherwise.
      networking.firewall.extraForwardRules = artifacts.nftables.forwardRules;
      networking.firewall.extraReversePathFilterRules = artifacts.nftables.reversePathRules;
      # BGP from self-service peers' interfaces (their group; empty without autopeer).
      networking.firewall.extraInputRules = artifacts.nftables.hostInputRules;
    })

    (lib.optionalAttrs (options ? sops) {
      sops.secrets = mkIf (cfg.enable && useSops) sopsSecrets;
    })
  ];
}

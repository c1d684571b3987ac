# What a module-evaluation test looks at in an evaluated configuration
# (./evaluate.nix), as JSON-safe data; see ./eval-module.nix.
lib: eval:
let
  inherit (eval) config options;

  bird = config.services.bird;
  fw = config.networking.firewall;

  activationScript =
    s:
    if builtins.isString s then
      {
        deps = [ ];
        text = s;
      }
    else
      { inherit (s) deps text; };

  sopsConfig = config.sops;
  sopsSecret = s: {
    inherit (s)
      name
      key
      path
      format
      mode
      owner
      group
      restartUnits
      reloadUnits
      ;
    sopsFile = toString s.sopsFile;
  };
in
{
  failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) config.assertions);
  inherit (config) warnings;

  config = {
    services.bird = {
      inherit (bird)
        enable
        autoReload
        checkConfig
        preCheckConfig
        ;
      package = toString bird.package;
      config = if options.services.bird.config.isDefined then bird.config else null;
    };
    networking.wireguard = {
      inherit (config.networking.wireguard) enable useNetworkd interfaces;
    };
    networking.nftables = {
      inherit (config.networking.nftables) enable tables;
    };
    networking.firewall = {
      inherit (fw)
        enable
        backend
        allowedTCPPorts
        allowedUDPPorts
        allowedUDPPortRanges
        trustedInterfaces
        checkReversePath
        filterForward
        extraInputRules
        extraForwardRules
        extraReversePathFilterRules
        interfaces
        ;
    };
    networking.nat = {
      inherit (config.networking.nat) enable;
    };
    boot.kernel.sysctl = lib.filterAttrs (_: v: v != null) config.boot.kernel.sysctl;
    systemd.services = lib.mapAttrs (_: s: {
      inherit (s)
        serviceConfig
        environment
        after
        wants
        requires
        wantedBy
        stopIfChanged
        restartIfChanged
        ;
    }) config.systemd.services;
    systemd.timers = lib.mapAttrs (_: t: { inherit (t) wantedBy timerConfig; }) config.systemd.timers;
    systemd.tmpfiles.rules = config.systemd.tmpfiles.rules;
    # The autopeer units' spec file (ibgp-tunnel's autopeer.nix), its text
    # as ./stub-pkgs.nix's writeText keeps it.
    ibgpTunnelAutopeerSpec = (lib.attrByPath [ "services" "ibgpTunnel" "autopeer" "specFile" ] null config).text or null;
    users.users = lib.mapAttrs (_: u: { inherit (u) isSystemUser group; }) config.users.users;
    users.groups = builtins.attrNames config.users.groups;
    system.activationScripts = lib.mapAttrs (_: activationScript) config.system.activationScripts;
  }
  // lib.optionalAttrs (options ? sops) {
    sops = {
      secrets = lib.mapAttrs (_: sopsSecret) sopsConfig.secrets;
      age = { inherit (sopsConfig.age) keyFile sshKeyPaths; };
      inherit (sopsConfig) useSystemdActivation;
      # What sops-install-secrets reads at activation; forcing it type-checks
      # age.keyFile (pathNotInStore) and runs manifest-for.nix's sopsFile checks.
      manifest = builtins.fromJSON (
        builtins.unsafeDiscardStringContext config.system.build.sops-nix-manifest.text
      );
    };
  };
}

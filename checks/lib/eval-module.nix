# Evaluate modules against the declared NixOS (and sops-nix) options and
# return plain data for `nix-instantiate --eval --strict --json`:
#
#   nix-instantiate --eval --strict --json checks/lib/eval-module.nix \
#     --arg lib 'import /tmp/nixpkgs-lib/lib' \
#     --arg modules '[ ./modules/ibgp-tunnel ./some-host.nix ]'
#
# Arguments:
#   lib          nixpkgs.lib (`import <nixpkgs-lib checkout>/lib`)
#   modules      list of modules (paths, attrsets or functions)
#   withSops     false: evaluate as a host without sops-nix (no `sops` options)
#   specialArgs  passed to lib.evalModules (e.g. a stub `pkgs`)
#
# Result: { failedAssertions = [ message ]; warnings = [ message ]; config = { ... }; }
# `config` holds only the values the ibgp-tunnel module is expected to set,
# as JSON-safe data (no derivations, paths become strings, sysctl nulls
# dropped since NixOS writes no line for them).
{
  lib,
  modules,
  withSops ? true,
  specialArgs ? { },
}:
let
  eval = lib.evalModules {
    inherit specialArgs;
    modules = [
      ./nixos-option-decls.nix
    ]
    ++ lib.optional (!withSops) { disabledModules = [ ./sops-option-decls.nix ]; }
    ++ modules;
  };
  inherit (eval) config options;

  bird = config.services.bird;
  fw = config.networking.firewall;

  secret = s: {
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
    # sopsFile may be undefined (no sopsFile and no sops.defaultSopsFile);
    # toString keeps a path out of the store.
    sopsFile =
      let
        r = builtins.tryEval (toString s.sopsFile);
      in
      if r.success then r.value else null;
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
      # package is left out: forcing it would need a pkgs.
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
      inherit (s) serviceConfig after wants requires wantedBy;
    }) config.systemd.services;
  }
  // lib.optionalAttrs withSops {
    sops.secrets = lib.mapAttrs (_: secret) config.sops.secrets;
  };
}

# Declarations of the NixOS options that the ibgp-tunnel module, the real
# sops-nix module and the example hosts set or read, at the types nixpkgs
# gives them, for module-evaluation tests without a NixOS system:
# `lib.evalModules { modules = [ ./nixos-option-decls.nix <sops-nix> module host ]; }`
# (./eval-module.nix does this, with ./stub-pkgs.nix as `pkgs`).
#
# Only nixpkgs.lib is needed. The type *structure* is copied from nixpkgs (see
# docs/nixos-options.md for the files and revisions read); the implementations
# (units, scripts, build-time checks) are not. Where a real default needs a
# package, ./stub-pkgs.nix gives a named stand-in derivation.
#
# Besides the options, a few upstream *definitions and assertions* are
# mirrored (marked "UPSTREAM") because a real NixOS evaluation has them too:
# network-interfaces.nix's `net.ipv4.conf.all.forwarding = mkDefault false`
# (a second mkDefault of that key cannot merge), bird.nix's unit lines,
# WireGuard key/PSK
# exclusivity, the networkd backend's restrictions and firewall.filterForward
# requiring nftables.
#
# sops-nix is not declared here: the tests import the real module
# (sops-nix/modules/sops from the verified flake-input cache).
{
  lib,
  config,
  pkgs,
  ...
}:
let
  inherit (lib) mkOption types;

  # --- nixos/lib/systemd-unit-options.nix: unitOption ----------------------
  unitOption = lib.mkOptionType {
    name = "systemd option";
    merge =
      loc: defs:
      let
        defs' = lib.filterOverrides defs;
      in
      if lib.any (def: lib.isList def.value) defs' then
        lib.concatMap (def: lib.toList def.value) defs'
      else
        lib.mergeEqualOption loc defs';
  };

  # nixos/lib/systemd-lib.nix checkUnitConfig + systemd-unit-options.nix
  # checkService, reduced to the two value checks upstream makes.
  checkService =
    attrs:
    let
      unwrap =
        v:
        if (v._type or "") == "override" || (v._type or "") == "if" then unwrap v.content else v;
      oneOf =
        name: values: !(attrs ? ${name}) || lib.elem (unwrap attrs.${name}) values;
      ok =
        oneOf "Type" [
          "exec"
          "simple"
          "forking"
          "oneshot"
          "dbus"
          "notify"
          "notify-reload"
          "idle"
        ]
        && oneOf "Restart" [
          "no"
          "on-success"
          "on-failure"
          "on-abnormal"
          "on-abort"
          "always"
        ];
    in
    if ok then true else builtins.trace "systemd serviceConfig: bad Type or Restart value" false;

  unitNames = mkOption {
    type = types.listOf types.str; # upstream: listOf unitNameType
    default = [ ];
  };

  serviceSubmodule = {
    options = {
      serviceConfig = mkOption {
        type = types.addCheck (types.attrsOf unitOption) checkService;
        default = { };
        description = "[Service] section (systemd.services.<name>.serviceConfig).";
      };
      # Not asked for, declared because a module adapting services usually
      # also orders them; same types as upstream.
      unitConfig = mkOption {
        type = types.attrsOf unitOption;
        default = { };
      };
      after = unitNames;
      before = unitNames;
      wants = unitNames;
      requires = unitNames;
      bindsTo = unitNames;
      partOf = unitNames;
      wantedBy = unitNames;
      requiredBy = unitNames;
      restartTriggers = mkOption {
        type = types.listOf types.unspecified;
        default = [ ];
      };
      reloadTriggers = mkOption {
        type = types.listOf unitOption;
        default = [ ];
      };
      conflicts = unitNames;
      enable = mkOption {
        type = types.bool;
        default = true;
      };
      description = mkOption {
        type = types.singleLineStr;
        default = "";
      };
      environment = mkOption {
        type = types.attrsOf (
          types.nullOr (
            types.oneOf [
              types.str
              types.path
              types.package
            ]
          )
        );
        default = { };
      };
      path = mkOption {
        type = types.listOf (
          types.oneOf [
            types.package
            types.str
          ]
        );
        default = [ ];
      };
      script = mkOption {
        type = types.lines;
        default = "";
      };
      # switch-to-configuration: stop in the old generation + start in the
      # new one (true), or one `systemctl restart` in the new one (false).
      restartIfChanged = mkOption {
        type = types.bool;
        default = true;
      };
      reloadIfChanged = mkOption {
        type = types.bool;
        default = false;
      };
      stopIfChanged = mkOption {
        type = types.bool;
        default = true;
      };
    };
  };

  # --- nixos/modules/services/networking/wireguard.nix ----------------------
  # `listOf str` coerced from a list, as upstream's pre/post hooks.
  hookLines = mkOption {
    type = types.coercedTo (types.listOf types.str) (lib.concatStringsSep "\n") types.lines;
    default = "";
  };

  peerOpts =
    { config, ... }:
    {
      options = {
        publicKey = mkOption {
          # Required: no default, and not nullable.
          type = types.singleLineStr;
          description = "The base64 public key of the peer.";
        };
        name = mkOption {
          type = types.str;
          default =
            lib.replaceStrings [ "/" "-" " " "+" "=" ] [ "-" "\\x2d" "\\x20" "\\x2b" "\\x3d" ]
              config.publicKey;
          description = "Name used to derive peer unit name (wireguard-<iface>-peer-<name>).";
        };
        presharedKey = mkOption {
          type = types.nullOr types.str;
          default = null;
        };
        presharedKeyFile = mkOption {
          type = types.nullOr types.str;
          default = null;
        };
        allowedIPs = mkOption {
          # Required: no default.
          type = types.listOf types.str;
        };
        endpoint = mkOption {
          type = types.nullOr types.str;
          default = null;
        };
        persistentKeepalive = mkOption {
          type = types.nullOr types.int;
          default = null;
        };
        dynamicEndpointRefreshSeconds = mkOption {
          type = types.nullOr types.int;
          default = null;
        };
        dynamicEndpointRefreshRestartSeconds = mkOption {
          type = types.nullOr types.ints.unsigned;
          default = null;
        };
      };
    };

  interfaceOpts = {
    options = {
      ips = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      listenPort = mkOption {
        type = types.nullOr types.int; # not types.port
        default = null;
      };
      privateKey = mkOption {
        type = types.nullOr types.str;
        default = null;
      };
      privateKeyFile = mkOption {
        type = types.nullOr types.str; # a string, never copied to the store
        default = null;
      };
      generatePrivateKeyFile = mkOption {
        type = types.bool;
        default = false;
      };
      allowedIPsAsRoutes = mkOption {
        type = types.bool;
        default = true;
      };
      peers = mkOption {
        type = types.listOf (types.submodule peerOpts);
        default = [ ];
      };
      table = mkOption {
        type = types.str;
        default = "main";
      };
      metric = mkOption {
        type = types.nullOr types.int;
        default = null;
      };
      mtu = mkOption {
        type = types.nullOr types.int;
        default = null;
      };
      fwMark = mkOption {
        type = types.nullOr types.str;
        default = null;
      };
      type = mkOption {
        type = types.enum [
          "wireguard"
          "amneziawg"
        ];
        default = "wireguard";
      };
      dynamicEndpointRefreshSeconds = mkOption {
        type = types.int;
        default = 0;
      };
      socketNamespace = mkOption {
        type = types.nullOr types.str;
        default = null;
      };
      interfaceNamespace = mkOption {
        type = types.nullOr types.str;
        default = null;
      };
      preSetup = hookLines;
      postSetup = hookLines;
      preShutdown = hookLines;
      postShutdown = hookLines;
    };
  };

  # --- nixos/modules/services/networking/nftables.nix -----------------------
  tableSubmodule =
    { name, ... }:
    {
      options = {
        enable = mkOption {
          type = types.bool;
          default = true;
        };
        name = mkOption { type = types.str; };
        content = mkOption { type = types.lines; };
        family = mkOption {
          type = types.enum [
            "ip"
            "ip6"
            "inet"
            "arp"
            "bridge"
            "netdev"
          ];
        };
      };
      config.name = lib.mkDefault name;
    };

  # --- nixos/modules/services/networking/firewall.nix -----------------------
  canonicalizePortList = ports: lib.unique (builtins.sort builtins.lessThan ports);
  portList = mkOption {
    type = types.listOf types.port;
    default = [ ];
    apply = canonicalizePortList;
  };
  portRanges = mkOption {
    type = types.listOf (types.attrsOf types.port);
    default = [ ];
  };
  commonFirewallOptions = {
    allowedTCPPorts = portList;
    allowedTCPPortRanges = portRanges;
    allowedUDPPorts = portList;
    allowedUDPPortRanges = portRanges;
  };

  # --- nixos/modules/config/sysctl.nix ---------------------------------------
  sysctlOption = lib.mkOptionType {
    name = "sysctl option value";
    check =
      val:
      let
        checkType = x: lib.isBool x || lib.isString x || lib.isInt x || x == null;
      in
      checkType val || ((val._type or "") == "override" && checkType val.content);
    # Unique per priority: two definitions of one key at the same priority
    # throw, even when they are equal.
    merge = loc: defs: lib.mergeOneOption loc defs;
  };
  highestValueType = types.ints.unsigned // {
    merge = loc: defs: lib.foldl (a: b: if b.value == null then null else lib.max a b.value) 0 defs;
  };

  wg = config.networking.wireguard;
  allPeers = lib.concatLists (
    lib.mapAttrsToList (
      interfaceName: interfaceCfg: map (peer: { inherit interfaceName peer; }) interfaceCfg.peers
    ) wg.interfaces
  );

  # --- nixos/modules/system/activation/activation-script.nix: scriptType ----
  activationScript = types.either types.str (
    types.submodule {
      options = {
        deps = mkOption {
          type = types.listOf types.str;
          default = [ ];
        };
        text = mkOption { type = types.lines; };
        supportsDryActivation = mkOption {
          type = types.bool;
          default = false;
        };
      };
    }
  );

  # --- nixos/modules/tasks/network-interfaces.nix (addrOpts, routeOpts,
  # gatewayOpts, interfaceOpts: the address and route parts)
  prefixLengthOf = v: types.addCheck types.int (n: n >= 0 && n <= (if v == 4 then 32 else 128));
  addressModule = v: {
    options = {
      address = mkOption { type = types.str; };
      prefixLength = mkOption { type = prefixLengthOf v; };
    };
  };
  routeModule = v: {
    options = {
      address = mkOption { type = types.str; };
      prefixLength = mkOption { type = prefixLengthOf v; };
      type = mkOption {
        type = types.nullOr (
          types.enum [
            "unicast"
            "local"
            "broadcast"
            "multicast"
          ]
        );
        default = null;
      };
      via = mkOption {
        type = types.nullOr types.str;
        default = null;
      };
      options = mkOption {
        type = types.attrsOf types.str;
        default = { };
      };
    };
  };
  addressesOf = v: mkOption {
    type = types.listOf (types.submodule (addressModule v));
    default = [ ];
  };
  routesOf = v: mkOption {
    type = types.listOf (types.submodule (routeModule v));
    default = [ ];
  };
  interfaceModule =
    { name, ... }:
    {
      options = {
        name = mkOption {
          type = types.str;
          default = name;
        };
        useDHCP = mkOption {
          type = types.nullOr types.bool;
          default = null;
        };
        ipv4.addresses = addressesOf 4;
        ipv6.addresses = addressesOf 6;
        ipv4.routes = routesOf 4;
        ipv6.routes = routesOf 6;
      };
    };
  gatewayModule = {
    options = {
      address = mkOption { type = types.str; };
      interface = mkOption {
        type = types.nullOr types.str;
        default = null;
      };
      metric = mkOption {
        type = types.nullOr types.int;
        default = null;
      };
      source = mkOption {
        type = types.nullOr types.str;
        default = null;
      };
    };
  };

  # --- nixos/modules/tasks/filesystems.nix (coreFileSystemOpts + fileSystemOpts, subset)
  nonEmptyStr = types.addCheck types.str (s: builtins.match "[ \t\n]*" s == null);
  fileSystemModule =
    { name, ... }:
    {
      options = {
        mountPoint = mkOption {
          type = types.str;
          default = name;
        };
        device = mkOption {
          type = types.nullOr nonEmptyStr;
          default = null;
        };
        fsType = mkOption {
          type = nonEmptyStr;
          default = "auto";
        };
        options = mkOption {
          type = types.nonEmptyListOf nonEmptyStr;
          default = [ "defaults" ];
        };
        label = mkOption {
          type = types.nullOr types.str;
          default = null;
        };
        autoResize = mkOption {
          type = types.bool;
          default = false;
        };
        neededForBoot = mkOption {
          type = types.bool;
          default = false;
        };
      };
    };
in
{
  imports = [ ./prometheus-exporter-decls.nix ];

  options = {
    # --- nixos/modules/misc/assertions.nix ----------------------------------
    assertions = mkOption {
      type = types.listOf types.unspecified;
      internal = true;
      default = [ ];
    };
    warnings = mkOption {
      type = types.listOf types.str;
      internal = true;
      default = [ ];
    };

    # --- bird.nix -------------------------------------------------------------
    services.bird = {
      enable = lib.mkEnableOption "BIRD Internet Routing Daemon";
      package = lib.mkPackageOption pkgs "bird3" { };
      config = mkOption {
        # No default upstream.
        type = types.lines;
      };
      autoReload = mkOption {
        type = types.bool;
        default = true;
      };
      checkConfig = mkOption {
        type = types.bool;
        default = true;
      };
      preCheckConfig = mkOption {
        type = types.lines;
        default = "";
      };
    };

    # --- wireguard.nix / wireguard-networkd.nix --------------------------------
    # nixos/modules/tasks/network-interfaces.nix; services.ibgpTunnel.hostName
    # defaults to it.
    networking.hostName = mkOption {
      type = types.strMatching "^$|^[[:alnum:]]([[:alnum:]_-]{0,61}[[:alnum:]])?$";
      default = "nixos";
    };

    networking.wireguard = {
      enable = mkOption {
        type = types.bool;
        default = wg.interfaces != { };
      };
      interfaces = mkOption {
        type = types.attrsOf (types.submodule interfaceOpts);
        default = { };
      };
      useNetworkd = mkOption {
        # STAND-IN: upstream default is config.networking.useNetworkd.
        type = types.bool;
        default = false;
      };
    };

    # --- nftables.nix -----------------------------------------------------------
    networking.nftables = {
      enable = mkOption {
        type = types.bool;
        default = false;
      };
      checkRuleset = mkOption {
        type = types.bool;
        default = true;
      };
      preCheckRuleset = mkOption {
        type = types.lines;
        default = "";
      };
      tables = mkOption {
        type = types.attrsOf (types.submodule tableSubmodule);
        default = { };
      };
    };

    # --- firewall.nix / firewall-nftables.nix ---------------------------------
    networking.firewall = commonFirewallOptions // {
      enable = mkOption {
        type = types.bool;
        default = true;
      };
      backend = mkOption {
        type = types.enum [
          "iptables"
          "nftables"
          "firewalld"
        ];
        # STAND-IN: upstream checks services.firewalld.enable first.
        default = if config.networking.nftables.enable then "nftables" else "iptables";
      };
      trustedInterfaces = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      checkReversePath = mkOption {
        type = types.either types.bool (
          types.enum [
            "strict"
            "loose"
          ]
        );
        default = true;
      };
      filterForward = mkOption {
        type = types.bool;
        default = false;
      };
      extraInputRules = mkOption {
        type = types.lines;
        default = "";
      };
      extraForwardRules = mkOption {
        type = types.lines;
        default = "";
      };
      extraReversePathFilterRules = mkOption {
        type = types.lines;
        default = "";
      };
      interfaces = mkOption {
        type = types.attrsOf (types.submodule [ { options = commonFirewallOptions; } ]);
        default = { };
      };
    };

    # --- nat.nix (declared so a module can look at it; we do NAT ourselves) ---
    networking.nat = {
      enable = mkOption {
        type = types.bool;
        default = false;
      };
      enableIPv6 = mkOption {
        type = types.bool;
        default = false;
      };
      internalInterfaces = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      internalIPs = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      externalInterface = mkOption {
        type = types.nullOr types.str;
        default = null;
      };
    };

    # --- sysctl.nix ---------------------------------------------------------------
    boot.kernel.sysctl = mkOption {
      type = types.submodule {
        freeformType = types.attrsOf sysctlOption;
        options = {
          "net.core.rmem_max" = mkOption {
            type = types.nullOr highestValueType;
            default = null;
          };
          "net.core.wmem_max" = mkOption {
            type = types.nullOr highestValueType;
            default = null;
          };
        };
      };
      default = { };
    };

    # --- systemd.services.<name> (subset, see serviceSubmodule) ----------------
    systemd.services = mkOption {
      type = types.attrsOf (types.submodule serviceSubmodule);
      default = { };
    };
    # nixos/modules/system/boot/systemd.nix: systemdUtils.types.timers, an
    # attrsOf submodule of systemd-unit-options.nix's timerOptions (subset:
    # what the DN42 ROA timer sets).
    systemd.timers = mkOption {
      type = types.attrsOf (
        types.submodule {
          options = {
            description = mkOption {
              type = types.singleLineStr;
              default = "";
            };
            wantedBy = unitNames;
            timerConfig = mkOption {
              type = types.attrsOf unitOption;
              default = { };
            };
            unitConfig = mkOption {
              type = types.attrsOf unitOption;
              default = { };
            };
          };
        }
      );
      default = { };
    };
    # nixos/modules/system/boot/systemd/tmpfiles.nix
    systemd.tmpfiles.rules = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
    # nixos/modules/system/boot/systemd.nix
    systemd.package = lib.mkPackageOption pkgs "systemd" { };
    # nixos/modules/system/boot/systemd/sysusers.nix; sops-nix reads it.
    systemd.sysusers.enable = lib.mkEnableOption "systemd-sysusers";
    # nixos/modules/services/system/userborn.nix; sops-nix reads it.
    services.userborn.enable = lib.mkEnableOption "userborn";

    # --- activation-script.nix (no `apply`: the script needs pkgs) -------------
    system.activationScripts = mkOption {
      type = types.attrsOf activationScript;
      default = { };
    };
    # --- nixos/modules/system/build.nix ------------------------------------------
    system.build = mkOption {
      type = types.submoduleWith {
        modules = [ { freeformType = types.lazyAttrsOf (types.uniq types.unspecified); } ];
      };
      default = { };
    };
    # --- nixos/modules/misc/version.nix ----------------------------------------
    system.stateVersion = mkOption {
      type = types.str;
      default = "26.05";
    };

    # --- nixos/modules/services/networking/ssh/sshd.nix (read by sops-nix) -----
    services.openssh = {
      enable = mkOption {
        type = types.bool;
        default = false;
      };
      hostKeys = mkOption {
        type = types.listOf types.attrs;
        default = [
          {
            type = "rsa";
            bits = 4096;
            path = "/etc/ssh/ssh_host_rsa_key";
          }
          {
            type = "ed25519";
            path = "/etc/ssh/ssh_host_ed25519_key";
          }
        ];
      };
    };

    # users-groups.nix declares users.users; sshd.nix (userOptions) adds
    # openssh.authorizedKeys. Only what the hosts and the module set is
    # declared here (the module: the autopeer units' accounts, as
    # services.bird declares its `bird` user).
    users.users = mkOption {
      type = types.attrsOf (
        types.submodule {
          options.isSystemUser = mkOption {
            type = types.bool;
            default = false;
          };
          options.group = mkOption {
            type = types.str;
            default = "";
          };
          options.description = mkOption {
            type = types.passwdEntry types.str;
            default = "";
          };
          options.openssh.authorizedKeys = {
            keys = mkOption {
              type = types.listOf types.singleLineStr;
              default = [ ];
            };
            keyFiles = mkOption {
              type = types.listOf types.path;
              default = [ ];
            };
          };
        }
      );
      default = { };
    };

    # users-groups.nix: users.groups (attrsOf submodule of groupOpts; the
    # module sets none of its options).
    users.groups = mkOption {
      type = types.attrsOf (types.submodule { });
      default = { };
    };

    # nixos/modules/misc/nixpkgs.nix (flake.nix sets it for the example hosts;
    # upstream's `apply = lib.systems.elaborate` is left out)
    nixpkgs.hostPlatform = mkOption {
      type = types.either types.str types.attrs;
    };

    # nixos/modules/config/system-path.nix; the VM test's nodes add curl.
    environment.systemPackages = mkOption {
      type = types.listOf types.package;
      default = [ ];
    };

    # --- machine options the example hosts set ---------------------------------
    # nixos/modules/tasks/network-interfaces.nix
    networking.useDHCP = mkOption {
      type = types.bool;
      default = true;
    };
    # network-interfaces.nix; the module reads it (networkd handles RAs itself).
    networking.useNetworkd = mkOption {
      type = types.bool;
      default = false;
    };
    # network-interfaces.nix; the module reads it (no RA warning without IPv6).
    networking.enableIPv6 = mkOption {
      type = types.bool;
      default = true;
    };
    networking.interfaces = mkOption {
      type = types.attrsOf (types.submodule interfaceModule);
      default = { };
    };
    networking.defaultGateway = mkOption {
      type = types.nullOr (types.coercedTo types.str (address: { inherit address; }) (types.submodule gatewayModule));
      default = null;
    };
    # nixos/modules/tasks/filesystems.nix
    fileSystems = mkOption {
      type = types.attrsOf (types.submodule fileSystemModule);
      default = { };
    };
    # nixos/modules/system/boot/loader/grub/grub.nix,
    # systemd-boot/systemd-boot.nix, efi.nix
    boot.loader.grub = {
      enable = mkOption {
        type = types.bool;
        default = true;
      };
      device = mkOption {
        type = types.str;
        default = "";
      };
    };
    boot.loader.systemd-boot.enable = mkOption {
      type = types.bool;
      default = false;
    };
    boot.loader.efi.canTouchEfiVariables = mkOption {
      type = types.bool;
      default = false;
    };
    # nixos/modules/image/images.nix: image variants extend the host with these.
    image.modules = mkOption {
      type = types.attrsOf types.deferredModule;
      default = { };
    };
  };

  # UPSTREAM DEFINITION: network-interfaces.nix turns IPv4 forwarding off at
  # mkDefault (on only with proxyARP, which nothing here uses).
  config.boot.kernel.sysctl."net.ipv4.conf.all.forwarding" = lib.mkDefault false;

  # UPSTREAM DEFINITION: bird.nix's unit, the [Service] lines the ibgp-tunnel
  # module overrides or relies on, copied from NixOS/nixpkgs
  # 0148e16d1446003704803ecabb5a00cfea7d8568 (identical in Swarsel/nixpkgs
  # 4aa6836a648ca76c68866decf0c8965e36ec2a3b; the pinned c59305b is not in the
  # stored index). With it, the module's ExecStart/ExecStop must really win
  # over upstream's (scalar unit options of equal priority would conflict), and
  # python/tests/test_nixos_module.py compares the module's ExecStart with it.
  config.systemd.services.bird = lib.mkIf config.services.bird.enable {
    description = "BIRD Internet Routing Daemon";
    wantedBy = [ "multi-user.target" ];
    serviceConfig = {
      Type = "forking";
      Restart = "on-failure";
      User = "bird";
      Group = "bird";
      ExecStart = "${lib.getExe' config.services.bird.package "bird"} -c /etc/bird/bird.conf";
      ExecReload = "${lib.getExe' config.services.bird.package "birdc"} configure";
      ExecStop = "${lib.getExe' config.services.bird.package "birdc"} down";
      RuntimeDirectory = "bird";
    };
  };

  config.assertions =
    # UPSTREAM ASSERTION: firewall.nix
    lib.optional config.networking.firewall.enable {
      assertion = config.networking.firewall.filterForward -> config.networking.nftables.enable;
      message = "filterForward only works with the nftables based firewall";
    }
    # UPSTREAM ASSERTIONS: wireguard.nix (script backend and networkd alike)
    ++ lib.optionals wg.enable (
      lib.mapAttrsToList (name: value: {
        assertion = (value.privateKey != null) != (value.privateKeyFile != null);
        message = "Either networking.wireguard.interfaces.${name}.privateKey or networking.wireguard.interfaces.${name}.privateKeyFile must be set.";
      }) wg.interfaces
      ++ lib.mapAttrsToList (name: value: {
        assertion = value.generatePrivateKeyFile -> (value.privateKey == null);
        message = "networking.wireguard.interfaces.${name}.generatePrivateKeyFile must not be set if networking.wireguard.interfaces.${name}.privateKey is set.";
      }) wg.interfaces
      ++ map (
        { interfaceName, peer }:
        {
          assertion = (peer.presharedKey == null) || (peer.presharedKeyFile == null);
          message = "networking.wireguard.interfaces.${interfaceName} peer «${peer.publicKey}» has both presharedKey and presharedKeyFile set, but only one can be used.";
        }
      ) allPeers
    )
    # UPSTREAM ASSERTIONS: wireguard-networkd.nix (subset relevant here)
    ++ lib.optionals (wg.enable && wg.useNetworkd) (
      lib.concatLists (
        lib.mapAttrsToList (
          name: interface:
          [
            {
              assertion = interface.privateKey == null;
              message = "networking.wireguard.interfaces.${name}.privateKey cannot be used with networkd. Use privateKeyFile instead.";
            }
            {
              assertion = !interface.generatePrivateKeyFile;
              message = "networking.wireguard.interfaces.${name}.generatePrivateKeyFile cannot be used with networkd.";
            }
          ]
          ++ map (ip: {
            assertion = lib.hasInfix "/" ip;
            message = "networking.wireguard.interfaces.${name}.ips value \"${ip}\" requires a subnet (e.g. 192.0.2.1/32) with networkd.";
          }) interface.ips
          ++ lib.concatMap (peer: [
            {
              assertion = peer.presharedKey == null;
              message = "networking.wireguard.interfaces.${name}.peers[].presharedKey cannot be used with networkd. Use presharedKeyFile instead.";
            }
            {
              assertion = peer.dynamicEndpointRefreshSeconds == null;
              message = "networking.wireguard.interfaces.${name}.peers[].dynamicEndpointRefreshSeconds cannot be used with networkd. Use networking.wireguard.interfaces.${name}.dynamicEndpointRefreshSeconds instead.";
            }
          ]) interface.peers
        ) wg.interfaces
      )
    );
}

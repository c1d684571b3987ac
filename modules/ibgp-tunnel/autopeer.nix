# services.ibgpTunnel.autopeer: self-service DN42 peering (docs/autopeer.md).
# A thin adapter: the settings are the field table's (options.nix), the
# paths base/defaults.toml's [autopeer], both handed over by the core's
# render (artifacts.autopeer); the units run the Python helper's commands.
#
#   ibgp-tunnel-autopeer-web       unprivileged: page + JSON API, writes spool/
#                                  and challenges/, reads status/ and the registry
#   ibgp-tunnel-autopeer-apply     root with CAP_NET_ADMIN only: restores peers/
#                                  at start, then applies the spool (ip, wg,
#                                  nft, bird -p, birdc); after bird.service
#   ibgp-tunnel-autopeer-registry  (+ timer) the DN42 registry checkout, as its
#                                  own user: the web's and apply's trust root
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
  cfg = config.services.ibgpTunnel;
  artifacts = core.render cfg;
  planErrors = if cfg.plan == null then [ ] else builtins.filter (f: f.severity == "error") (core.planProblems (core.readPlan cfg.plan));
  deploy = cfg.enable && core.problems cfg == [ ] && planErrors == [ ];
  # Present only on a reflector that enables autopeer (render/default.nix).
  ap = artifacts.autopeer or null;
  wanted = cfg.enable && cfg.autopeer.enable;
  on = deploy && ap != null;

  paths = ap.paths;
  settings = ap.settings;
  sandbox = import ./unit-sandbox.nix;

  webUnit = "ibgp-tunnel-autopeer-web";
  applyUnit = "ibgp-tunnel-autopeer-apply";
  registryUnit = "ibgp-tunnel-autopeer-registry";
  # Two accounts, neither root: the web service (spool/, challenges/) and the
  # registry refresh (registry/). Apart, because the registry decides whose
  # signature counts: a subverted web service must not be able to rewrite it.
  webUser = "ibgp-autopeer";
  registryUser = "ibgp-autopeer-registry";
  # nixpkgs' services.bird: the control socket is bird:bird 0660 (BIRD chmods
  # it), in RuntimeDirectory=bird.
  birdGroup = "bird";
  birdSocket = "/run/bird/bird.ctl";
  birdConf = "/etc/bird/bird.conf";

  # The registry refresh keeps its cache, its copies, its lock and the
  # checkout's symlink in registry_dir (autopeer/registry_refresh.py), so its
  # user owns that directory and nothing else of the state.
  registryCheckout = paths.registry_checkout;

  exe = "${cfg.autopeer.package}/bin/ibgp-tunnel";
  birdExe = name: lib.getExe' config.services.bird.package name;

  # The spec the core renders requests against (render_autopeers): this
  # host's, from the same options the rest of the module renders, as JSON.
  # The module's own options beside the table's (package, specFile) are no
  # part of it.
  spec = builtins.intersectAttrs (core.specShape.fields // { enable = null; }) cfg // {
    autopeer = removeAttrs cfg.autopeer [
      "package"
      "specFile"
    ];
  };
  specFile = pkgs.writeText "ibgp-tunnel-autopeer-spec.json" (builtins.toJSON spec);

  loopback = builtins.elem settings.listenAddress [
    "127.0.0.1"
    "::1"
  ];
  # systemd splits ExecStart with shell-like quoting and expands %-specifiers:
  # every word quoted, every '%' doubled (the grammars admit none today).
  args = words: builtins.replaceStrings [ "%" ] [ "%%" ] (lib.escapeShellArgs words);

  # The command lines, each once (docs/autopeer.md lists them).
  webCommand = args (
    [
      exe
      "dn42"
      "autopeer"
      "serve"
      "--state-dir"
      paths.state_dir
      "--registry"
      registryCheckout
      "--spec"
      "${specFile}"
      "--listen-address"
      settings.listenAddress
      "--listen-port"
      (toString settings.listenPort)
      "--challenge-ttl"
      (toString settings.challengeTtl)
      "--rate-limit"
      (toString settings.rateLimit)
      "--max-peers"
      (toString settings.maxPeers)
      "--max-per-asn"
      (toString settings.maxPerAsn)
    ]
    # On the loopback only the host's own reverse proxy reaches it: its
    # X-Forwarded-For (last entry) names the client the rate limit counts.
    ++ lib.optionals loopback [
      "--trusted-proxy"
      "127.0.0.1"
      "--trusted-proxy"
      "::1"
    ]
  );
  # --watch restores peers/ first (interfaces, nft elements, the include),
  # then applies the spool: the boot path and the running one are one command.
  applyCommand = args [
    exe
    "dn42"
    "autopeer"
    "apply"
    "--watch"
    "--state-dir"
    paths.state_dir
    "--spec"
    "${specFile}"
    "--bird-conf"
    birdConf
    "--bird-socket"
    birdSocket
    "--bird"
    (birdExe "bird")
    "--birdc"
    (birdExe "birdc")
    "--registry"
    registryCheckout
    "--nft-table"
    ap.nftTable
  ];
  registryCommand = args [
    exe
    "dn42"
    "autopeer"
    "registry-refresh"
    "--registry-url"
    settings.registryUrl
    "--registry"
    registryCheckout
  ];

  # The apply unit reads our DN42 private key (the tunnels it restores): with
  # sops-nix decrypting in a unit (sysusers, userborn), after it, as
  # ./config.nix orders the WireGuard units.
  sopsService = "sops-install-secrets.service";
  sopsInUnit = cfg.sops.file != null && options ? sops.useSystemdActivation && config.sops.useSystemdActivation;

  # nix-instantiate evaluates the core (render_autopeers) without touching a
  # store: the dummy store needs no daemon socket and no writable /nix/var.
  nixEnvironment = {
    NIX_REMOTE = "dummy://";
  };

  # Listening on every address would put the plain-HTTP API beside the
  # reverse proxy's TLS one.
  unspecified = builtins.elem settings.listenAddress [
    "0.0.0.0"
    "::"
  ];
in
{
  options.services.ibgpTunnel.autopeer.specFile = mkOption {
    type = types.nullOr types.package;
    # A default, not a definition under mkIf: the spec is read from the
    # options this one sits beside.
    default = if on then specFile else null;
    defaultText = literalExpression "null (set when autopeer is deployed)";
    readOnly = true;
    internal = true;
    description = "This host's spec as JSON, which both autopeer units render requests against (`--spec`; also for `ibgp-tunnel dn42 autopeer remove --spec`).";
  };

  options.services.ibgpTunnel.autopeer.package = mkOption {
    type = types.package;
    default = pkgs.callPackage ../../python/package.nix { };
    defaultText = literalExpression "ibgp-tunnel.packages.\${system}.ibgp-tunnel";
    description = "The ibgp-tunnel helper the autopeer units run (`ibgp-tunnel dn42 autopeer ...`).";
  };

  config = mkMerge [
    (mkIf (wanted && ap != null) {
      assertions = [
        {
          assertion = !unspecified;
          message = "services.ibgpTunnel.autopeer.listenAddress is ${settings.listenAddress}: the autopeer API speaks plain HTTP for the host's reverse proxy (docs/autopeer.md); listen on the loopback (127.0.0.1, the default) or one address the proxy reaches, never on all of them.";
        }
        {
          assertion = settings.listenPort >= 1024;
          message = "services.ibgpTunnel.autopeer.listenPort is ${toString settings.listenPort}: the web service runs without capabilities and cannot bind a port below 1024; use a high port (8042, the default) and let the reverse proxy serve 443.";
        }
        {
          assertion = cfg.nftables.enable;
          message = "services.ibgpTunnel.autopeer.enable needs services.ibgpTunnel.nftables.enable: the apply unit puts each autopeer's interface and port into the named sets of the module's nftables table.";
        }
      ];
    })

    (mkIf on {
      # bird.conf includes the runtime file: the build-time check gets an
      # empty stub, the host the file itself (empty until a peering) before
      # BIRD first starts.
      services.bird.preCheckConfig = ap.preCheckConfig;

      users.users.${webUser} = {
        isSystemUser = true;
        group = webUser;
        description = "ibgp-tunnel self-service DN42 peering (web)";
      };
      users.groups.${webUser} = { };
      users.users.${registryUser} = {
        isSystemUser = true;
        group = registryUser;
        description = "ibgp-tunnel self-service DN42 peering (registry refresh)";
      };
      users.groups.${registryUser} = { };

      # The layout and modes the apply unit's StateDir.create() sets too (it
      # chmods, never chowns): the web user writes spool/ (group) and its own
      # challenges/, reads status/ and bird/; peers/ is root's alone. Nothing
      # is world-writable.
      systemd.tmpfiles.rules = [
        "d ${paths.state_dir} 0755 root root -"
        "d ${paths.spool_dir} 0770 root ${webUser} -"
        "d ${paths.peers_dir} 0700 root root -"
        "d ${paths.status_dir} 0755 root root -"
        "d ${paths.challenges_dir} 0700 ${webUser} ${webUser} -"
        "d ${builtins.dirOf paths.bird_include} 0755 root root -"
        "f ${paths.bird_include} 0644 root root -"
        "d ${paths.registry_dir} 0755 ${registryUser} ${registryUser} -"
      ];

      # The WireGuard ports only (the core's render, with openFirewall); the
      # API's port is for the local reverse proxy.
      networking.firewall.allowedUDPPortRanges = ap.allowedUDPPortRanges;

      systemd.services.${webUnit} = {
        description = "ibgp-tunnel self-service DN42 peering: web page and API";
        wantedBy = [ "multi-user.target" ];
        after = [ "network.target" ];
        # ssh-keygen -Y verify, gpg --verify (in a throwaway home under /tmp).
        path = [
          pkgs.openssh
          pkgs.gnupg
        ];
        environment = nixEnvironment;
        serviceConfig = sandbox // {
          ExecStart = webCommand;
          User = webUser;
          Group = webUser;
          UMask = "0027";
          ReadWritePaths = [
            paths.spool_dir
            paths.challenges_dir
          ];
          InaccessiblePaths = [ "-${paths.peers_dir}" ];
          Restart = "on-failure";
          RestartSec = "5s";
        };
      };

      systemd.services.${applyUnit} = {
        description = "ibgp-tunnel self-service DN42 peering: apply requests (tunnels, BIRD, nftables)";
        wantedBy = [ "multi-user.target" ];
        # BIRD reads the include (the last applied peerings) when it starts;
        # this unit then recreates their interfaces and nft elements, and
        # BIRD's sessions come up as the interfaces appear. Our table (the
        # named sets) is loaded by nftables.service.
        after = [
          "network.target"
          "nftables.service"
          "bird.service"
        ]
        ++ lib.optional sopsInUnit sopsService;
        wants = [ "bird.service" ] ++ lib.optional sopsInUnit sopsService;
        path = [
          pkgs.iproute2
          pkgs.wireguard-tools
          pkgs.nftables
          pkgs.openssh
          pkgs.gnupg
          config.services.bird.package
        ];
        environment = nixEnvironment;
        serviceConfig = sandbox // {
          ExecStart = applyCommand;
          # root without CAP_DAC_OVERRIDE: its own state, the web user's
          # spool entries (0640) and BIRD's socket (0660) by group, links and
          # nftables by CAP_NET_ADMIN, nothing more.
          CapabilityBoundingSet = [ "CAP_NET_ADMIN" ];
          AmbientCapabilities = "";
          SupplementaryGroups = [
            birdGroup
            webUser
          ];
          UMask = "0022";
          ReadWritePaths = [ paths.state_dir ];
          RestrictAddressFamilies = sandbox.RestrictAddressFamilies ++ [ "AF_NETLINK" ];
          Restart = "on-failure";
          RestartSec = "5s";
        };
      };

      systemd.services.${registryUnit} = {
        description = "ibgp-tunnel self-service DN42 peering: refresh the DN42 registry copy";
        after = [ "network-online.target" ];
        wants = [ "network-online.target" ];
        path = [ pkgs.git ];
        environment = nixEnvironment;
        serviceConfig = sandbox // {
          Type = "oneshot";
          ExecStart = registryCommand;
          User = registryUser;
          Group = registryUser;
          UMask = "0022";
          ReadWritePaths = [ paths.registry_dir ];
        };
      };
      systemd.timers.${registryUnit} = {
        wantedBy = [ "timers.target" ];
        timerConfig = {
          OnBootSec = "30s";
          OnUnitActiveSec = settings.registryRefresh;
        };
      };
    })
  ];
}

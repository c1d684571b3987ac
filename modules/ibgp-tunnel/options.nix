# services.ibgpTunnel: the host spec of docs/interfaces.md as typed,
# documented NixOS options. Words follow networking.wireguard where they
# mean the same thing (ips, listenPort, privateKeyFile, peers' allowedIPs...).
{ config, lib, ... }:
let
  inherit (lib) mkEnableOption mkOption types literalExpression;
  core = import ../lib;
  defaults = core.defaults;
  tokens = core.tokens;

  # Types from the core's token grammars, so a bad value fails with the
  # option's name; render's emitters check the same grammars again.
  token = kind: typeOf tokens.${kind};
  typeOf = kind: types.strMatching kind.regex // { description = "string, ${kind.expect}"; };
  cfg = config.services.ibgpTunnel;

  # The options of one scope of the field table (modules/lib/grammar/fields.nix).
  fieldOptions = import ./field-options.nix lib;

  sopsSecretPath = name: if cfg.sops.file != null && config ? sops then config.sops.secrets.${name}.path else null;

  # interface, listenPort, ips, peer, ...: the linkEnd fields of fields.nix.
  # Their defaults that depend on this configuration are given here.
  linkModule = { name, ... }: {
    options = fieldOptions "linkEnd" {
      peer = {
        name.default = name;
        presharedKeyFile.default = sopsSecretPath (defaults.pskSecretName name);
        persistentKeepalive.default = if cfg.role == "client" then defaults.persistent_keepalive else null;
      };
    };
  };

  # asn, neighbor, interface, exportSets, latency, ... (fields.nix); ./dn42.nix adds tunnel.
  dn42PeerModule = {
    options = fieldOptions "dn42Peer" { };
  };

  # bfd, bfdIntervalMs, ...: the tuning fields of fields.nix, defaults from
  # defaults.toml [tuning].
  tuningModule.options = fieldOptions "tuning" { };
in
{
  # asn, prefixSets (the plan's), role, routerId, announce, dn42Inbound, ...
  # (each host's): the plan and host fields of fields.nix.
  options.services.ibgpTunnel = fieldOptions "plan" { } // fieldOptions "host" { } // {
    tuning = mkOption {
      type = types.submodule tuningModule;
      default = { };
      description = "Failover and restart behaviour of the BGP sessions. The defaults make a tunnel failure visible in under half a second and a BIRD restart hitless.";
    };

    enable = mkEnableOption "iBGP over a dedicated WireGuard tunnel (BIRD, WireGuard, nftables)";

    plan = mkOption {
      type = types.nullOr types.path;
      default = null;
      example = literalExpression "./hosts/plan.toml";
      description = "A plan file describing the whole network. When set, every option below defaults to what the plan says for `hostName`; options set here still win.";
    };

    hostName = mkOption {
      type = types.str;
      default = config.networking.hostName;
      defaultText = literalExpression "config.networking.hostName";
      description = "Which host of the plan this machine is.";
    };

    openFirewall = mkOption {
      type = types.bool;
      default = true;
      description = "Open the links' WireGuard ports on reflectors (pitfall 1 of the write-up).";
    };

    privateKey = mkOption {
      type = types.nullOr types.str;
      default = null;
      visible = false;
      description = "Not supported: a key given as a string ends up in the world-readable Nix store. Use privateKeyFile.";
    };

    privateKeyFile = mkOption {
      type = types.nullOr (token "runtimePath");
      default = sopsSecretPath defaults.secret_private_key;
      defaultText = literalExpression ''config.sops.secrets."wg_ibgp/private_key".path when services.ibgpTunnel.sops.file is set, else null'';
      example = "/run/secrets/wg_ibgp/private_key";
      description = "File holding this host's WireGuard private key (`wg genkey`), used by all its links. A runtime path, never a Nix path.";
    };

    links = mkOption {
      type = types.attrsOf (types.submodule linkModule);
      default = { };
      description = "WireGuard tunnels to the other role, one per reflector-client pair, each carrying one iBGP session.";
    };

    dn42Peers = mkOption {
      type = types.attrsOf (types.submodule dn42PeerModule);
      default = { };
      description = "Reflector: eBGP sessions to DN42 peers; what they send (filtered by importSets) is reflected to the clients.";
    };

    nftables.enable = mkOption {
      type = types.bool;
      default = true;
      description = "Add the `inet ibgp-tunnel` table (masquerade) and the forward/rpfilter rules to the nftables firewall. Turn off only if you write these yourself.";
    };

    sops.file = mkOption {
      type = types.nullOr types.path;
      default = null;
      example = literalExpression "./secrets/pve.yaml";
      description = "With sops-nix imported: the sops file holding `wg_ibgp/private_key` and `wg_ibgp/psk/<link>` (as written by `ibgp-tunnel keys`). The key options then default to the decrypted secrets' paths.";
    };
  };
}

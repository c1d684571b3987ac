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
  between = kind: types.ints.between kind.low kind.high;
  cfg = config.services.ibgpTunnel;

  # The options of one scope of the field table (modules/lib/grammar/fields.nix).
  fieldOptions = import ./field-options.nix lib;

  sopsSecretPath = name: if cfg.sops.file != null && config ? sops then config.sops.secrets.${name}.path else null;

  prefixListOption = kind: description: mkOption {
    type = types.listOf (typeOf kind);
    default = [ ];
    inherit description;
  };

  # kind: "pattern" (BIRD prefix patterns) or "prefix" (plain prefixes).
  familiesOption = kind: description: example: mkOption {
    type = types.submodule {
      options = {
        ipv4 = prefixListOption tokens."${kind}4" "IPv4 entries.";
        ipv6 = prefixListOption tokens."${kind}6" "IPv6 entries.";
      };
    };
    default = { };
    inherit description example;
  };

  peerOptions = linkName: {
    name = mkOption {
      type = token "name";
      default = linkName;
      defaultText = literalExpression "<link name>";
      description = "Name of the host at the other end; the iBGP protocol is called `ibgp_<name>` (`birdc show protocols ibgp_dmz`).";
    };
    publicKey = mkOption {
      type = types.nullOr (token "publicKey");
      default = null;
      example = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";
      description = "The other end's WireGuard public key (base64, as `wg pubkey` prints; `ibgp-tunnel keys` writes it into the plan).";
    };
    presharedKeyFile = mkOption {
      type = types.nullOr (token "runtimePath");
      default = sopsSecretPath (defaults.pskSecretName linkName);
      defaultText = literalExpression ''config.sops.secrets."wg_ibgp/psk/<link>".path when services.ibgpTunnel.sops.file is set, else null'';
      example = "/run/secrets/wg_ibgp/psk/pve";
      description = "File holding the link's preshared key (`wg genpsk`). A runtime path, never a Nix path: the store is world-readable.";
    };
    endpoint = mkOption {
      type = types.nullOr (token "endpoint");
      default = null;
      example = "203.0.113.10:51821";
      description = "`host:port` the client dials (the VPS's public address). Leave null on the reflector: clients dial it.";
    };
    allowedIPs = mkOption {
      type = types.listOf (token "cidr");
      default = defaults.allowed_ips;
      description = "Addresses WireGuard accepts from and sends to this peer. The default, four /1 halves, covers everything without being a default route; with allowedIPsAsRoutes = false BIRD alone decides what is routed.";
    };
    persistentKeepalive = mkOption {
      type = types.nullOr (between tokens.keepalive);
      default = if cfg.role == "client" then defaults.persistent_keepalive else null;
      defaultText = literalExpression "25 on clients, null on reflectors";
      description = "Seconds between keepalives, on the side that dials, to keep NAT mappings open.";
    };
  };

  linkModule = { name, ... }: {
    options = {
      interface = mkOption {
        type = token "interface";
        default = defaults.interface;
        description = "WireGuard interface of this link (at most 15 characters). Each link on a host needs its own.";
      };
      listenPort = mkOption {
        type = types.port;
        default = defaults.port;
        description = "UDP port WireGuard listens on; opened in the firewall on reflectors (pitfall 1 of the write-up: open it in the provider's external firewall too).";
      };
      ips = mkOption {
        type = types.listOf (token "cidr");
        example = [ "10.255.255.1/30" "fdb7:1dec:4d21:ff::2/64" ];
        description = "This end's tunnel addresses with the link's prefix length: one IPv4 in a /30 or /31 and one global (not fe80::/10) IPv6 in a /64 or /127.";
      };
      neighborAddress = mkOption {
        type = token "ipv4";
        example = "10.255.255.2";
        description = "The other end's tunnel IPv4 address: the iBGP neighbor. The session runs over IPv4 and carries IPv4 and IPv6 routes.";
      };
      preference = mkOption {
        type = types.nullOr (between tokens.localPref);
        default = null;
        example = 200;
        description = "On a client with two or more reflectors: the BGP local preference of the routes this link brings (higher wins; null is BIRD's 100). Give each link its own, so the plan, not BIRD's tie-breakers, picks the path. Routes the reflector only has from another reflector get the link's rank among the client's links instead (0 for the least preferred), so each preference must be at least the number of the client's links.";
      };
      alternativePath = mkOption {
        type = types.bool;
        default = false;
        description = "The client of this link reaches another reflector too (set from the plan). BFD down then drops this link's routes at once (`bfd on`) instead of keeping them for the graceful restart time, so traffic moves to the other reflector within BFD's detection time. Implied on a client with two or more links.";
      };
      reflectorPeer = mkOption {
        type = types.bool;
        default = false;
        description = "On a reflector: the other end is a reflector too (set from the plan for a link between two reflectors). The session is a plain iBGP peering, not `rr client`: each side sends the other what its clients announce and what its DN42 peers offer, never what it heard from the other, and imports it below its own routes (local preference 50), marked with the large community (asn, 1, 1) so clients rank it below every route a reflector heard directly. It imports importPrefixes (what the other reflector's clients announce) and this host's importSets (DN42 routes).";
      };
      importPrefixes = familiesOption "pattern" "On a reflector: prefixes this client may announce (BIRD prefix patterns); with reflectorPeer, what the other reflector and its clients announce. Empty means the reflector imports nothing from it (but, with reflectorPeer, its importSets)." { ipv4 = [ "10.42.23.0/24" ]; };
      peer = mkOption {
        type = types.submodule { options = peerOptions name; };
        default = { };
        description = "The WireGuard peer at the other end of the link.";
      };
    };
  };

  # asn, neighbor, interface, exportSets, latency, ... (fields.nix); ./dn42.nix adds tunnel.
  dn42PeerModule = {
    options = fieldOptions "dn42Peer";
  };
  inboundModule = {
    options = {
      prefix = mkOption {
        type = token "prefixAny";
        example = "172.22.0.53/32";
        description = "Destination prefix (IPv4 or IPv6): a host, or a net, behind or on this client.";
      };
      proto = mkOption {
        type = types.enum tokens.inboundProto.values;
        example = "tcp";
        description = "Transport protocol of the opened port.";
      };
      port = mkOption {
        type = between tokens.inboundPort;
        example = 443;
        description = "Destination port opened.";
      };
    };
  };

  # bfd, bfdIntervalMs, ...: the tuning fields of fields.nix, defaults from
  # defaults.toml [tuning].
  tuningModule.options = fieldOptions "tuning";
in
{
  # role, routerId, clusterId, importSets, ...: the host fields of fields.nix.
  options.services.ibgpTunnel = fieldOptions "host" // {
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

    asn = mkOption {
      type = between tokens.asn;
      example = 4242420038;
      description = "Own AS number (DN42: 4242420000-4242429999).";
    };

    prefixSets = mkOption {
      type = types.attrsOf (types.submodule {
        options = {
          ipv4 = prefixListOption tokens.pattern4 "IPv4 prefix patterns in BIRD syntax, e.g. `172.20.0.0/14{21,29}`.";
          ipv6 = prefixListOption tokens.pattern6 "IPv6 prefix patterns in BIRD syntax, e.g. `fd00::/8{44,64}`.";
        };
      });
      default = builtins.mapAttrs (_: set: { inherit (set) ipv4 ipv6; }) defaults.prefix_sets;
      defaultText = literalExpression "{ dn42 = <the DN42 filter guide's sets>; }";
      description = "Named prefix sets, each defined once in bird.conf as `<NAME>_NET_v4`/`<NAME>_NET_v6`.";
    };

    announce = familiesOption "prefix" "Prefixes this host announces over iBGP as static routes (the write-up's custom routing: the VPS announces what clients should send through it)." { ipv4 = [ "104.16.0.0/13" ]; };

    dn42Inbound = mkOption {
      type = types.listOf (types.submodule inboundModule);
      default = [ ];
      example = [
        {
          prefix = "172.22.0.53/32";
          proto = "tcp";
          port = 443;
        }
      ];
      description = "Destinations (prefix, protocol, port) that hosts outside the plan, DN42's, may open connections to through the tunnels. Everything else from DN42 towards the clients gets only replies to connections made from inside: a reflector drops it where it comes in from a DN42 interface, a client drops what comes out of its tunnels from outside internalPrefixes. From a plan (`dn42_inbound` on a client): a client's own entries; a reflector lets every host's through.";
    };

    internalPrefixes = familiesOption "prefix" "Client: the plan's own networks (every link's subnets, every client's announcements; filled from the plan). New connections out of the tunnels are forwarded from these sources (LAN to LAN, the reflector); from anywhere else (DN42) only to dn42Inbound. Input from a tunnel is only replies, the reflector's BGP, BFD and ping from its tunnel address, and dn42Inbound; the monitoring exporters' ports are never reachable through a tunnel." { ipv4 = [ "10.255.255.0/30" "192.168.2.0/24" ]; };

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

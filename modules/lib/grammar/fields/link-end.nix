# One end of a link as that end's options (../fields.nix, scope linkEnd):
# services.ibgpTunnel.links.<l>.<option>. Not plan keys (key null): each end's
# view is derived from the plan's [links.<l>] (fields/link.nix) and the hosts
# it joins; `derived` says how (plan/host.nix computes it). The link rules
# (plan/rules/links.nix) check the plan's values.
#
# Defaults that depend on the module's configuration (the link's name, sops,
# the host's role) are given by modules/ibgp-tunnel/options.nix when it makes
# the options; `defaultText` documents them here.
let
  defaults = import ../../base/defaults.nix;
  families = import ./families.nix;
  entries = {
    ipv4 = "IPv4 entries.";
    ipv6 = "IPv6 entries.";
  };
  both = [ "reflector" "client" ];
in
map (f: { key = null; optionPath = [ "links" "<name>" ]; roles = both; } // f) [
  {
    option = "interface";
    type = "str";
    token = "interface";
    default = defaults.interface;
    description = "WireGuard interface of this link (at most 15 characters). Each link on a host needs its own.";
    derived = "the link's interface";
  }
  {
    option = "listenPort";
    type = "int";
    token = "port";
    optionType = types: types.port;
    default = defaults.port;
    description = "UDP port WireGuard listens on; opened in the firewall on reflectors (pitfall 1 of the write-up: open it in the provider's external firewall too).";
    derived = "the link's port";
  }
  {
    option = "ips";
    type = "strList";
    token = "cidr";
    example = [ "10.255.255.1/30" "fdb7:1dec:4d21:ff::2/64" ];
    description = "This end's tunnel addresses with the link's prefix length: one IPv4 in a /30 or /31 and one global (not fe80::/10) IPv6 in a /64 or /127.";
    derived = "<side>_ipv4 and <side>_ipv6 with ipv4's and ipv6's prefix lengths";
  }
  {
    option = "neighborAddress";
    type = "str";
    token = "ipv4";
    example = "10.255.255.2";
    description = "The other end's tunnel IPv4 address: the iBGP neighbor. The session runs over IPv4 and carries IPv4 and IPv6 routes.";
    derived = "the other side's <side>_ipv4";
  }
  {
    option = "mtu";
    specOptional = true;
    type = "int";
    token = "dn42.mtu";
    nullable = true;
    default = null;
    example = 1380;
    description = "The tunnel interface's MTU (networking.wireguard.interfaces.<interface>.mtu); null keeps WireGuard's own (1420).";
    derived = "the link's mtu";
  }
  {
    option = "preference";
    specOptional = true;
    type = "int";
    token = "localPref";
    nullable = true;
    default = null;
    example = 200;
    description = "On a client with two or more reflectors: the BGP local preference of the routes this link brings (higher wins; null is BIRD's 100). Give each link its own, so the plan, not BIRD's tie-breakers, picks the path. Routes the reflector only has from another reflector get the link's rank among the client's links instead (0 for the least preferred), so each preference must be at least the number of the client's links.";
    derived = "the link's preference on its client; null elsewhere";
  }
  {
    option = "alternativePath";
    specOptional = true;
    type = "bool";
    default = false;
    description = "The client of this link reaches another reflector too (set from the plan). BFD down then drops this link's routes at once (`bfd on`) instead of keeping them for the graceful restart time, so traffic moves to the other reflector within BFD's detection time. Implied on a client with two or more links.";
    derived = "the link's client has two or more links";
  }
  {
    option = "reflectorPeer";
    specOptional = true;
    type = "bool";
    default = false;
    description = "On a reflector: the other end is a reflector too (set from the plan for a link between two reflectors). The session is a plain iBGP peering, not `rr client`: each side sends the other what its clients announce and what its DN42 peers offer, never what it heard from the other, and imports it below its own routes (local preference 50), marked with the large community (asn, 1, 1) so clients rank it below every route a reflector heard directly. It imports importPrefixes (what the other reflector's clients announce) and this host's importSets (DN42 routes).";
    derived = "both ends are reflectors";
  }
  {
    option = "importPrefixes";
    type = "record";
    fields = families {
      token = "pattern";
      option = entries;
    };
    default = { };
    example = { ipv4 = [ "10.42.23.0/24" ]; };
    description = "On a reflector: prefixes this client may announce (BIRD prefix patterns); with reflectorPeer, what the other reflector and its clients announce. Empty means the reflector imports nothing from it (but, with reflectorPeer, its importSets).";
    derived = "on a reflector, the client's announce (or, to another reflector, what that one reflects); empty on a client";
  }
  {
    option = "peer";
    type = "record";
    default = { };
    description = "The WireGuard peer at the other end of the link.";
    fields = map (f: { key = null; } // f) [
      {
        option = "name";
        type = "str";
        token = "name";
        defaultText = "<link name>";
        description = "Name of the host at the other end; the iBGP protocol is called `ibgp_<name>` (`birdc show protocols ibgp_dmz`).";
        derived = "the other side's host name";
      }
      {
        option = "publicKey";
        type = "str";
        token = "publicKey";
        nullable = true;
        default = null;
        example = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";
        description = "The other end's WireGuard public key (base64, as `wg pubkey` prints; `ibgp-tunnel keys` writes it into the plan).";
        derived = "the other host's public_key";
      }
      {
        option = "presharedKeyFile";
        type = "str";
        token = "runtimePath";
        nullable = true;
        defaultText = ''config.sops.secrets."wg_ibgp/psk/<link>".path when services.ibgpTunnel.sops.file is set, else null'';
        example = "/run/secrets/wg_ibgp/psk/pve";
        description = "File holding the link's preshared key (`wg genpsk`). A runtime path, never a Nix path: the store is world-readable.";
        derived = "the sops secret wg_ibgp/psk/<link> (a plan leaves it to the option's default)";
      }
      {
        option = "endpoint";
        type = "str";
        token = "endpoint";
        nullable = true;
        default = null;
        example = "203.0.113.10:51821";
        description = "`host:port` the client dials (the VPS's public address). Leave null on the reflector: clients dial it.";
        derived = "on the dialling side, the reflector's endpoint with the link's port";
      }
      {
        option = "allowedIPs";
        type = "strList";
        token = "cidr";
        default = defaults.allowed_ips;
        description = "Addresses WireGuard accepts from and sends to this peer. The default, four /1 halves, covers everything without being a default route; with allowedIPsAsRoutes = false BIRD alone decides what is routed.";
        derived = "defaults.toml's allowed_ips";
      }
      {
        option = "persistentKeepalive";
        type = "int";
        token = "keepalive";
        nullable = true;
        defaultText = "25 on clients, null on reflectors";
        description = "Seconds between keepalives, on the side that dials, to keep NAT mappings open.";
        derived = "defaults.toml's persistent_keepalive on the dialling side, null on the other";
      }
    ];
    derived = "the host at the other end";
  }
]

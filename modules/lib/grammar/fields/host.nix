# The host fields of the table (../fields.nix): [hosts.<h>] / services.ibgpTunnel.<option>.
#
# key null: an option only, its value derived from the plan (`derived` says
# how; plan/host.nix computes it). option null: the plan only (`derived` says
# where the value goes). A field with `derived` is left to plan/host.nix.
let
  both = [ "reflector" "client" ];
  families = import ./families.nix;
  entries = {
    ipv4 = "IPv4 entries.";
    ipv6 = "IPv6 entries.";
  };
in
[
  # --- [hosts.<h>] / services.ibgpTunnel -----------------------------------
  {
    key = "role";
    option = "role";
    type = "enum";
    values = [ "reflector" "client" ];
    roles = both;
    example = "client";
    description = "`reflector`: the VPS that peers with DN42 and reflects routes to its clients. `client`: a home router that learns routes over iBGP.";
  }
  {
    key = "router_id";
    option = "routerId";
    type = "str";
    token = "routerId";
    roles = both;
    example = "172.23.101.2";
    description = "BIRD router id (an IPv4 address, unique per host).";
  }
  {
    key = "cluster_id";
    option = "clusterId";
    specOptional = true;
    type = "str";
    token = "clusterId";
    nullable = true;
    roles = [ "reflector" ];
    example = "172.23.101.1";
    description = "Reflector: the RFC 4456 cluster id (`rr cluster id`), a dotted quad; unset keeps BIRD's default, the router id. With two or more reflectors each needs its own (see the README's two-reflector section).";
  }
  {
    key = "import_sets";
    option = "importSets";
    type = "strList";
    token = "name";
    default = [ ];
    roles = both;
    example = [ "dn42" "cf" ];
    description = "Prefix sets BIRD accepts: from the reflector (clients), or from DN42 peers (reflectors). Default routes are never accepted.";
  }
  {
    key = "kernel_export_sets";
    option = "kernelExportSets";
    type = "strList";
    token = "name";
    default = [ ];
    roles = both;
    example = [ "dn42" "cf" ];
    description = "Prefix sets BIRD installs into this host's kernel routing table.";
  }
  {
    key = "lan_interfaces";
    option = "lanInterfaces";
    type = "strList";
    token = "interface";
    default = [ ];
    roles = [ "client" ];
    example = [ "vmbr0" ];
    description = "Client: LAN interfaces whose traffic is masqueraded into the tunnel (pitfall 3 of the write-up).";
  }
  {
    key = "uplink_interfaces";
    option = "uplinkInterfaces";
    type = "strList";
    token = "interface";
    default = [ ];
    roles = [ "reflector" ];
    example = [ "eth0" ];
    description = "Reflector: interfaces tunnel traffic is masqueraded out of, like networking.nat.externalInterface (pitfall 3 of the write-up). Forwarded traffic for the plan's own networks (link subnets, clients' announcements, the DN42 space of import_sets and the DN42 peers' export_sets) is never sent out of them: it is rejected (ICMP unreachable) when no tunnel route holds it.";
  }
  {
    key = "accept_ra_interfaces";
    option = "acceptRAInterfaces";
    specOptional = true;
    type = "strList";
    token = "interface";
    nullable = true;
    roles = both;
    example = [ "wan0" ];
    description = ''
      Interfaces that learn an IPv6 address or default route from router
      advertisements handled by the kernel (SLAAC). The module turns on IPv6
      forwarding, and the kernel then ignores RAs on every interface whose
      `accept_ra` is 1 (its default), so the address and route expire; the
      module sets `net.ipv6.conf.<interface>.accept_ra = 2` on each listed
      one (a VLAN's `.` written `/`, as NixOS does). Unset (null): the
      uplink interfaces on a reflector; on a client, none, with a warning
      until you decide (`[ ]` when nothing needs it).

      Only the kernel's own RA handling reads this sysctl. NixOS's dhcpcd
      (networking.useDHCP) sets `accept_ra = 0` on the interfaces it runs on
      and handles RAs itself, forwarding or not, except where it leaves them
      to the kernel: an interface with a static IPv6 address (`noipv6rs`),
      with static IPv4 addresses (dhcpcd skips it), or
      `networking.dhcpcd.IPv6rs = false`. systemd-networkd
      (networking.useNetworkd) also handles RAs itself and ignores this
      sysctl: there set `IPv6AcceptRA = true` in the interface's
      `systemd.network.networks.<name>.networkConfig` (networkd turns RAs
      off by default only when its own `IPv6Forwarding=`/`IPForward=` is on).
    '';
  }
  {
    key = "allow_cover_everything";
    option = "allowCoverEverything";
    specOptional = true;
    type = "bool";
    default = false;
    roles = both;
    description = "Let importSets, kernelExportSets or announce (import_sets, kernel_export_sets, announce in the plan) cover every address (`0.0.0.0/0+`, or the two /1 halves together). Refused otherwise: such sets route all traffic, usually the tunnel's own included. A client's sets covering the endpoint it dials stay an error either way.";
  }
  {
    key = "public_key";
    option = null;
    type = "str";
    token = "publicKey";
    nullable = true;
    roles = both;
    description = "WireGuard public key (base64); written by `ibgp-tunnel keys`.";
    derived = "links.<l>.peer.publicKey of each host this one links to";
  }
  {
    key = "dn42_public_key";
    option = null;
    type = "str";
    token = "publicKey";
    nullable = true;
    check = true;
    roles = [ "reflector" ];
    description = "Our WireGuard public key on DN42 tunnels (base64), the one DN42 peers are given (`ibgp-tunnel dn42 peer-info`); written by `ibgp-tunnel keys` for a host with DN42 tunnels.";
  }
  {
    key = "endpoint";
    option = null;
    type = "str";
    token = "endpointHost";
    nullable = true;
    roles = [ "reflector" ];
    description = "Reflector only: the address clients dial (IPv4, IPv6 or DNS name, no port).";
    derived = "links.<l>.peer.endpoint (with the link's port) of each client that dials this reflector";
  }
  {
    key = "announce";
    option = "announce";
    type = "record";
    model = "Announce";
    modelDoc = "Static prefixes a host originates into iBGP.";
    fields = families {
      token = "prefix";
      plan = {
        ipv4 = "IPv4 prefixes, e.g. \"104.16.0.0/13\".";
        ipv6 = "IPv6 prefixes, e.g. \"2606:4700::/32\".";
      };
      option = entries;
    };
    default = { };
    roles = both;
    example = { ipv4 = [ "104.16.0.0/13" ]; };
    description = "Static prefixes this host sends over iBGP.";
    optionView.description = "Prefixes this host announces over iBGP as static routes (the write-up's custom routing: the VPS announces what clients should send through it).";
  }
  {
    # Its options are the dn42Roa scope's (fields/dn42-roa.nix), under dn42.roa.
    key = "dn42_roa";
    option = null;
    type = "record";
    model = "Dn42Roa";
    modelDoc = "ROA validation of DN42 routes: files a timer refreshes, BIRD reloads on change.";
    fields = import ./dn42-roa.nix;
    default = { };
    roles = [ "reflector" ];
    description = "Reflector with DN42 peers: ROA validation.";
    derived = "services.ibgpTunnel.dn42.roa (the dn42Roa fields)";
  }
  {
    key = "dn42_inbound";
    option = "dn42Inbound";
    specOptional = true;
    type = "recordList";
    model = "Inbound";
    modelDoc = "A destination hosts outside the plan (DN42) may open connections to.";
    fields = [
      {
        key = "prefix";
        option = "prefix";
        type = "str";
        token = "prefixAny";
        example = "172.22.0.53/32";
        description = "Destination prefix, IPv4 or IPv6, e.g. \"172.22.0.53/32\" (one host).";
        optionView.description = "Destination prefix (IPv4 or IPv6): a host, or a net, behind or on this client.";
      }
      {
        key = "proto";
        option = "proto";
        type = "enum";
        token = "inboundProto";
        example = "tcp";
        description = "Transport protocol: tcp or udp.";
        optionView.description = "Transport protocol of the opened port.";
      }
      {
        key = "port";
        option = "port";
        type = "int";
        token = "inboundPort";
        example = 443;
        description = "Destination port.";
        optionView.description = "Destination port opened.";
      }
    ];
    default = [ ];
    roles = both;
    example = [
      {
        prefix = "172.22.0.53/32";
        proto = "tcp";
        port = 443;
      }
    ];
    description = "Client: what DN42 may open connections to in this client's network, e.g. [{ prefix = \"172.22.0.53/32\", proto = \"tcp\", port = 443 }]. Everything else from DN42 gets only replies to connections made from inside.";
    derived = "a client's own entries; on a reflector every host's";
    optionView.description = "Destinations (prefix, protocol, port) that hosts outside the plan, DN42's, may open connections to through the tunnels. Everything else from DN42 towards the clients gets only replies to connections made from inside: a reflector drops it where it comes in from a DN42 interface, a client drops what comes out of its tunnels from outside internalPrefixes. From a plan (`dn42_inbound` on a client): a client's own entries; a reflector lets every host's through.";
  }
  {
    key = null;
    option = "internalPrefixes";
    specOptional = true;
    type = "record";
    fields = families {
      token = "prefix";
      option = entries;
    };
    default = { };
    roles = [ "client" ];
    example = { ipv4 = [ "10.255.255.0/30" "192.168.2.0/24" ]; };
    description = "Client: the plan's own networks (every link's subnets, every client's announcements; filled from the plan). New connections out of the tunnels are forwarded from these sources (LAN to LAN, the reflector); from anywhere else (DN42) only to dn42Inbound. Input from a tunnel is only replies, the reflector's BGP, BFD and ping from its tunnel address, and dn42Inbound; the monitoring exporters' ports are never reachable through a tunnel.";
    derived = "every link's subnets and every client's announce";
  }
]
# The DN42 route collector session (a record of its own file).
++ [ (import ./dn42-collector.nix) ]
# Self-service DN42 peering (a record of its own file).
++ [ (import ./autopeer.nix) ]

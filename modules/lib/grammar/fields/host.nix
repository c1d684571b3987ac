# The host fields of the table (../fields.nix): [hosts.<h>] / services.ibgpTunnel.<option>.
let
  both = [ "reflector" "client" ];
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
    description = "Reflector: interfaces tunnel traffic is masqueraded out of, like networking.nat.externalInterface (pitfall 3 of the write-up).";
  }
  {
    key = "accept_ra_interfaces";
    option = "acceptRAInterfaces";
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
    type = "bool";
    default = false;
    roles = both;
    description = "Let importSets, kernelExportSets or announce (import_sets, kernel_export_sets, announce in the plan) cover every address (`0.0.0.0/0+`, or the two /1 halves together). Refused otherwise: such sets route all traffic, usually the tunnel's own included. A client's sets covering the endpoint it dials stay an error either way.";
  }
]

# NixOS VM test: the example plan's dmz (reflector) and pve (client) with a
# LAN client behind pve, a host inside an announced prefix behind dmz, and
# the plan's DN42 peer (peer1) behind its own WireGuard tunnel.
# Keys come from the committed test secrets, decrypted by sops-nix with the
# committed test age key, as sops-nix's own tests do.
{ sops-nix, ibgpTunnel }:
{ lib, ... }:
let
  testKey = ../secrets/test-age-key.txt;
  # sops-nix types age.keyFile as pathNotInStore: like a real host, the VM
  # reads its key from a runtime path, put there before sops-nix decrypts.
  testKeyPath = "/run/ibgp-tunnel-test-age-key.txt";
  announcedHost = "104.16.132.229";

  # DN42: peer1's test-only WireGuard key (its public key is the plan's
  # dn42_peers.peer1.public_key) and dmz's DN42 public key (from the test
  # secrets' wg_dn42/private_key).
  peerKey = ../secrets/test-dn42-peer1-wireguard-key.txt;
  peerKeyPath = "/run/ibgp-tunnel-test-dn42-peer1.key";
  dmzDn42PublicKey = "gUujTXJ33LSu6v/4iU/1HorEvs4ZivjOqgvmP/cfbyo=";
  peerV4 = "172.21.80.0/24";
  peerV6 = "fd42:4200::/48";
  # Announced by peer1 too, but checks/dn42-roa4.conf registers another origin.
  hijackV4 = "172.21.99.0/24";

  common =
    {
      config,
      lib,
      pkgs,
      ...
    }:
    {
      imports = [
        sops-nix.nixosModules.sops
        ibgpTunnel
      ];
      # The exporters (ports left closed) and a client to read them locally.
      services.ibgpTunnel.monitoring.enable = true;
      environment.systemPackages = [ pkgs.curl ];
      sops.age.keyFile = testKeyPath;
      sops.age.sshKeyPaths = [ ];
      sops.gnupg.sshKeyPaths = [ ];
      networking.firewall.enable = true;
      networking.nftables.enable = true;

      # As sops-nix's pgp test does it: an activation snippet ordered before
      # setupSecrets (boot.initrd.postDeviceCommands, which its age tests use,
      # does not exist with systemd in stage 1). With systemd activation
      # (userborn, sysusers) sops-install-secrets.service runs after
      # activation anyway.
      system.activationScripts = {
        ibgpTunnelTestAgeKey = lib.stringAfter [ "specialfs" ] ''
          install -m 0400 ${testKey} ${testKeyPath}
        '';
        setupSecrets = lib.mkIf (!config.sops.useSystemdActivation) {
          deps = [ "ibgpTunnelTestAgeKey" ];
        };
      };
    };
in
{
  name = "ibgp-tunnel";

  nodes = {
    # vlan 1: the "internet" between dmz, pve and the announced host.
    # vlan 2: pve's LAN.
    dmz =
      { nodes, ... }:
      {
        imports = [ common ];
        virtualisation.vlans = [ 1 ];
        services.ibgpTunnel = {
          enable = true;
          plan = ../hosts/plan.toml;
          hostName = "dmz";
          sops.file = ../secrets/test/dmz.yaml;
          uplinkInterfaces = [ "eth1" ];
          # No internet in the test: the ROA unit fetches the test's files.
          dn42.roa.ipv4Url = "file://${./dn42-roa4.conf}";
          dn42.roa.ipv6Url = "file://${./dn42-roa6.conf}";
        };
        # The announced prefix lives behind the uplink in this test.
        networking.interfaces.eth1.ipv4.routes = [
          {
            address = announcedHost;
            prefixLength = 32;
            via = nodes.web.networking.primaryIPAddress;
          }
        ];
      };

    pve =
      { nodes, ... }:
      {
        imports = [ common ];
        virtualisation.vlans = [
          1
          2
        ];
        services.ibgpTunnel = {
          enable = true;
          plan = ../hosts/plan.toml;
          hostName = "pve";
          sops.file = ../secrets/test/pve.yaml;
          lanInterfaces = [ "eth2" ];
          links.pve.peer.endpoint = lib.mkForce "${nodes.dmz.networking.primaryIPAddress}:51821";
        };
        networking.firewall.filterForward = true;
      };

    # The DN42 peer: somebody else's router, configured by hand as DN42 peers
    # do (wg-quick style tunnel, link-local only, one MP-BGP session).
    peer1 =
      { config, nodes, ... }:
      {
        imports = [ common ];
        virtualisation.vlans = [ 1 ];
        system.activationScripts.ibgpTunnelTestPeerKey = lib.stringAfter [ "specialfs" ] ''
          install -m 0400 ${peerKey} ${peerKeyPath}
        '';
        # The PSK agreed with dmz, from dmz's own test secrets.
        sops.secrets."wg_dn42/psk/peer1".sopsFile = ../secrets/test/dmz.yaml;
        # BGP from dmz over the tunnel (both ends dial).
        networking.firewall.interfaces.wg0.allowedTCPPorts = [ 179 ];
        networking.wireguard.interfaces.wg0 = {
          ips = [ "fe80::1080/64" ];
          # The plan's IPv4 pair, seen from this end.
          postSetup = "ip -4 address add 172.20.42.1/32 peer 172.23.101.1/32 dev wg0";
          privateKeyFile = peerKeyPath;
          allowedIPsAsRoutes = false;
          peers = [
            {
              name = "dmz";
              publicKey = dmzDn42PublicKey;
              presharedKeyFile = config.sops.secrets."wg_dn42/psk/peer1".path;
              # dmz listens on 2 + the last four digits of peer1's ASN.
              endpoint = "${nodes.dmz.networking.primaryIPAddress}:21080";
              allowedIPs = [
                "0.0.0.0/0"
                "::/0"
              ];
              persistentKeepalive = 5;
            }
          ];
        };
        services.bird = {
          enable = true;
          config = ''
            router id 192.168.1.250;
            protocol device { }
            protocol static {
              ipv4;
              route ${peerV4} unreachable;
              route ${hijackV4} unreachable;
            }
            protocol static {
              ipv6;
              route ${peerV6} unreachable;
            }
            protocol bgp dmz {
              local as 4242421080;
              neighbor fe80::38 as 4242420038;
              interface "wg0";
              ipv4 { import none; export all; extended next hop on; };
              ipv6 { import none; export all; };
            }
          '';
        };
      };

    lan =
      { nodes, ... }:
      {
        virtualisation.vlans = [ 2 ];
        networking.defaultGateway = (lib.head nodes.pve.networking.interfaces.eth2.ipv4.addresses).address;
      };

    web = {
      virtualisation.vlans = [ 1 ];
      networking.interfaces.lo.ipv4.addresses = [
        {
          address = announcedHost;
          prefixLength = 32;
        }
      ];
      networking.firewall.enable = false;
    };
  };

  testScript = ''
    start_all()

    for machine in (dmz, pve):
        machine.wait_for_unit("bird.service")
        machine.wait_for_unit("wireguard-wg-ibgp.service")

    with subtest("iBGP session is Established on both ends"):
        dmz.wait_until_succeeds("birdc show protocols ibgp_pve | grep -q Established", timeout=60)
        pve.wait_until_succeeds("birdc show protocols ibgp_dmz | grep -q Established", timeout=60)

    with subtest("announced prefixes reach pve's kernel over the tunnel"):
        pve.wait_until_succeeds("ip route show proto bird | grep -q '^104.16.0.0/13 .*dev wg-ibgp'", timeout=60)
        pve.wait_until_succeeds("ip -6 route show proto bird | grep -q '^2606:4700::/32 .*dev wg-ibgp'", timeout=60)
        # Unreachable statics must not black-hole the reflector's own traffic.
        dmz.fail("ip route show proto bird | grep -q unreachable")

    with subtest("the WireGuard port is open on the reflector only"):
        dmz.succeed("nft list ruleset | grep -q 'udp dport 51821 accept'")

    with subtest("LAN traffic to an announced prefix goes through the tunnel"):
        lan.wait_until_succeeds("ping -c 1 -W 2 ${announcedHost}", timeout=60)
        out = lan.succeed("tracepath -n -m 3 ${announcedHost}")
        assert "10.255.255.2" in out, out

    with subtest("BFD watches the tunnel"):
        pve.wait_until_succeeds("birdc show bfd sessions | grep -q Up", timeout=30)

    with subtest("restarting the reflector's BIRD keeps the client's routes (graceful restart)"):
        dmz.succeed("systemctl restart bird.service")
        pve.succeed("ip route show proto bird | grep -q '^104.16.0.0/13 .*dev wg-ibgp'")
        # Past BFD's detection time (0.45 s): BFD down must start a graceful restart
        # (bfd graceful), not reset the session and flush the routes.
        pve.succeed("sleep 2; ip route show proto bird | grep -q '^104.16.0.0/13 .*dev wg-ibgp'")
        pve.wait_until_succeeds("birdc show protocols ibgp_dmz | grep -q Established", timeout=60)
        lan.succeed("ping -c 1 -W 2 ${announcedHost}")

    with subtest("stopping BIRD for good takes its routes out of the kernel"):
        # A stop is not a restart: birdc down, so nothing stale stays behind.
        pve.succeed("systemctl stop bird.service")
        pve.fail("ip route show proto bird | grep -q .")
        pve.fail("ip -6 route show proto bird | grep -q .")
        dmz.wait_until_fails("birdc show protocols ibgp_pve | grep -q Established", timeout=30)
        pve.succeed("systemctl start bird.service")
        pve.wait_until_succeeds("ip route show proto bird | grep -q '^104.16.0.0/13 .*dev wg-ibgp'", timeout=60)

    with subtest("DN42: one session over IPv6 link-local through the peer's own tunnel"):
        dmz.wait_for_unit("wireguard-dn42-peer1.service")
        # The first ROA download (normally 30 s after boot, then every 15 min).
        dmz.succeed("systemctl start ibgp-tunnel-dn42-roa.service")
        dmz.wait_until_succeeds("birdc show protocols all dn42_peer1 | grep -q 'Neighbor address: fe80::1080%dn42-peer1'", timeout=60)
        dmz.wait_until_succeeds("birdc show protocols dn42_peer1 | grep -q Established", timeout=60)

    with subtest("DN42: the peer's IPv4 and IPv6 routes reach pve through dmz"):
        dmz.wait_until_succeeds("ip route show proto bird | grep -q '^${peerV4} via inet6 fe80::1080 dev dn42-peer1'", timeout=60)
        pve.wait_until_succeeds("ip route show proto bird | grep -q '^${peerV4} .*dev wg-ibgp'", timeout=60)
        pve.wait_until_succeeds("ip -6 route show proto bird | grep -q '^${peerV6} .*dev wg-ibgp'", timeout=60)

    with subtest("DN42: ROA-invalid routes are refused"):
        dmz.succeed("birdc show route table dn42_roa4 | grep -q '${hijackV4}'")
        dmz.fail("birdc show route ${hijackV4} | grep -q '${hijackV4}'")
        pve.fail("ip route show proto bird | grep -q '^${hijackV4}'")

    with subtest("DN42: routes carry the link's communities to the client"):
        pve.succeed("birdc show route ${peerV4} all | grep -q '(64511,2) (64511,24) (64511,34)'")

    with subtest("the exporters read BIRD 3 and WireGuard; their ports stay closed"):
        for machine, session in ((dmz, "ibgp_pve"), (pve, "ibgp_dmz")):
            machine.wait_for_unit("prometheus-bird-exporter.service")
            machine.wait_for_unit("prometheus-wireguard-exporter.service")
            machine.wait_until_succeeds(
                "curl -sf http://127.0.0.1:9324/metrics"
                " | grep -E '^bird_protocol_up[{].*name=\"" + session + "\".*[}] 1$'",
                timeout=60,
            )
            machine.wait_until_succeeds(
                "curl -sf http://127.0.0.1:9324/metrics | grep -E '^bird_bfd_session_up[{].*[}] 1$'",
                timeout=60,
            )
            # A handshake has happened: its Unix time, not 0.
            machine.wait_until_succeeds(
                "curl -sf http://127.0.0.1:9586/metrics"
                " | grep -E '^wireguard_latest_handshake_seconds[{].*interface=\"wg-ibgp\".*[}] [1-9]'",
                timeout=60,
            )
        # The routes the plan gives pve, as IbgpTunnelKernelRoutesMissing counts them:
        # dmz's five IPv4 announcements and peer1's ROA-valid DN42 prefix.
        pve.succeed(
            "curl -sf http://127.0.0.1:9324/metrics"
            " | grep -E '^bird_protocol_prefix_export_count[{].*ip_version=\"4\".*proto=\"Kernel\".*[}] 6$'"
        )
        pve.fail("curl -sf --max-time 3 http://dmz:9324/metrics")

    with subtest("keys never enter the Nix store"):
        pve.succeed("test -e /run/secrets/wg_ibgp/private_key")
        pve.fail(
            "grep -qF \"$(cat /run/secrets/wg_ibgp/private_key)\""
            " /etc/bird/bird.conf $(readlink -f /etc/systemd/system/wireguard-wg-ibgp.service)"
        )
  '';
}

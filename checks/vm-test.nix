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
  # Announced by peer1 too, but checks/dn42-roa.json registers another origin.
  hijackV4 = "172.21.99.0/24";

  # Self-service DN42 peering (docs/autopeer.md): `outside` is a DN42 router in
  # no plan. Its test-only keys: the SSH key its maintainer lists in the VM's
  # own fixture registry (./autopeer-registry, served to dmz's registry
  # refresh as a file:// git repository) and its WireGuard key.
  outsideAsn = 4242421234;
  outsideSshKey = ../secrets/test-autopeer-outside-ssh-ed25519;
  outsideSshKeyPath = "/run/ibgp-tunnel-test-autopeer-ssh";
  outsideWgKey = ../secrets/test-autopeer-outside-wireguard-key.txt;
  outsideWgKeyPath = "/run/ibgp-tunnel-test-autopeer-wg.key";
  outsidePublicKey = "EpX3bMxHfPxVZJQ6TgdtnnxFgUadAFwQS9/4KAo4bxU=";
  outsideNeighbor = "fe80::1234";
  outsideListenPort = 51820;
  outsideV6 = "fd42:1234::/48";

  scriptValues = {
    announced_host = announcedHost;
    peer_v4 = peerV4;
    peer_v6 = peerV6;
    hijack_v4 = hijackV4;
    autopeer_asn = outsideAsn;
    autopeer_public_key = outsidePublicKey;
    autopeer_neighbor = outsideNeighbor;
    autopeer_listen_port = outsideListenPort;
    autopeer_ssh_key = outsideSshKeyPath;
    autopeer_v6 = outsideV6;
  };

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
      { nodes, pkgs, ... }:
      let
        # The fixture registry as the git repository the refresh fetches.
        registry = pkgs.runCommand "ibgp-tunnel-test-autopeer-registry.git" { nativeBuildInputs = [ pkgs.git ]; } ''
          cp -r ${./autopeer-registry} work
          chmod -R u+w work
          cd work
          git init -q
          git add -A
          git -c user.name=test -c user.email=test@example.invalid commit -q -m "the VM test's DN42 registry"
          git clone -q --bare . $out
        '';
      in
      {
        imports = [ common ];
        virtualisation.vlans = [ 1 ];
        services.ibgpTunnel = {
          enable = true;
          plan = ../hosts/plan.toml;
          hostName = "dmz";
          sops.file = ../secrets/test/dmz.yaml;
          uplinkInterfaces = [ "eth1" ];
          # RPKI over RTR, as the plan says: the local stayrtr serves DN42's
          # ROA JSON, here the test's file (no internet in the test).
          dn42.roa.jsonUrl = "file://${./dn42-roa.json}";
          # stayrtr rereads the JSON (and BIRD asks it) every 10 s, not 15 min.
          dn42.roa.interval = "10s";
          # Self-service peering for `outside`, its registry the fixture's.
          autopeer = {
            enable = true;
            linkLocal = "fe80::38/64";
            registryUrl = "file://${registry}";
          };
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

    # A DN42 router in no plan that asks dmz for a peering through the
    # autopeer API: its own WireGuard and BIRD, configured by hand, the
    # tunnel towards the port dmz gives AS4242421234 (20000 + 1234).
    outside =
      { nodes, ... }:
      {
        # Not `common`: no sops secrets, no ibgp-tunnel module (it is somebody else's).
        virtualisation.vlans = [ 1 ];
        networking.nftables.enable = true;
        system.activationScripts.ibgpTunnelTestAutopeerKeys = lib.stringAfter [ "specialfs" ] ''
          install -m 0400 ${outsideWgKey} ${outsideWgKeyPath}
          install -m 0400 ${outsideSshKey} ${outsideSshKeyPath}
        '';
        networking.firewall.allowedUDPPorts = [ outsideListenPort ];
        # BGP from dmz over the tunnel (both ends dial).
        networking.firewall.interfaces.wg0.allowedTCPPorts = [ 179 ];
        networking.wireguard.interfaces.wg0 = {
          ips = [ "${outsideNeighbor}/64" ];
          listenPort = outsideListenPort;
          privateKeyFile = outsideWgKeyPath;
          allowedIPsAsRoutes = false;
          peers = [
            {
              name = "dmz";
              publicKey = dmzDn42PublicKey;
              endpoint = "${nodes.dmz.networking.primaryIPAddress}:${toString (20000 + lib.mod outsideAsn 10000)}";
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
            router id 192.168.1.251;
            protocol device { }
            protocol static {
              ipv6;
              route ${outsideV6} unreachable;
            }
            protocol bgp dmz {
              local as ${toString outsideAsn};
              neighbor fe80::38 as 4242420038;
              interface "wg0";
              ipv4 { import none; export none; extended next hop on; };
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

  # The script lives in ./vm-test.py, so checks/run/vm.py runs the very same
  # text against the namespace lab; the values it shares with the nodes come
  # first, as Python assignments.
  testScript =
    builtins.concatStringsSep "" (
      map (name: "${name} = ${builtins.toJSON scriptValues.${name}}\n") (builtins.attrNames scriptValues)
    )
    + builtins.readFile ./vm-test.py;
}

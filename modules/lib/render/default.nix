# host spec -> everything a host runs (docs/interfaces.md §3).
let
  inherit (builtins) attrNames attrValues listToAttrs;
  defaults = import ../base/defaults.nix;
  dn42 = import ./dn42.nix;
in
given:
let
  # Renderers see only the checked copy: every token emitted, or a throw.
  spec = (import ../spec/shape.nix).checked given;
in
{
  birdConfig = import ./bird.nix spec;
  wireguard = import ./wireguard.nix spec // dn42.wireguard spec;
  nftables = import ./nftables.nix spec;
  # With forwarding on, the kernel ignores router advertisements unless
  # accept_ra is 2: a VPS (or a client's WAN) that gets its IPv6 by SLAAC
  # would lose its default route. acceptRAInterfaces names them; unset, a
  # reflector's uplinks. The names passed the core's interface-name check
  # (spec.nix); a '.' (VLAN) is written '/' in a sysctl key, as NixOS does.
  sysctl = {
    "net.ipv4.conf.all.forwarding" = 1;
    "net.ipv6.conf.all.forwarding" = 1;
  }
  // listToAttrs (
    map (name: {
      name = "net.ipv6.conf.${builtins.replaceStrings [ "." ] [ "/" ] name}.accept_ra";
      value = 2;
    }) (if spec.acceptRAInterfaces == null then spec.uplinkInterfaces else spec.acceptRAInterfaces)
  );
  allowedUDPPorts = if spec.role == "reflector" && spec.openFirewall then map (link: link.listenPort) (attrValues spec.links) ++ dn42.listenPorts spec else [ ];
  # networking.firewall.interfaces: BGP (TCP 179; both ends dial) from the iBGP
  # and eBGP neighbours, multihop BFD (UDP 4784) on the tunnels.
  firewallInterfaces =
    listToAttrs (
      map (link: {
        name = link.interface;
        value = {
          allowedTCPPorts = [ 179 ];
          allowedUDPPorts = if spec.tuning.bfd then [ 4784 ] else [ ];
        };
      }) (attrValues spec.links)
    )
    // listToAttrs (
      map (name: {
        inherit name;
        value = {
          allowedTCPPorts = [ 179 ];
          allowedUDPPorts = [ ];
        };
      }) (dn42.interfaces spec)
    );
  secretNames = {
    privateKey = defaults.secret_private_key;
    psk = listToAttrs (map (name: { inherit name; value = defaults.pskSecretName name; }) (attrNames spec.links));
    dn42 = dn42.secretNames spec;
  };
  # The ROA refresh (script, arguments, interval) and the build-time check's
  # stubs; null when this host does no ROA validation.
  dn42Roa = dn42.roa spec;
  # The RTR variant (dn42.roa.source = "rtr"): the JSON refresh and the local
  # stayrtr; null otherwise.
  dn42Rtr = dn42.rtr spec;
}
# The latency = "auto" measurement (script, arguments, interval, stubs, first
# contents); only on a host that has such a peer, so other renders stay as they were.
# Decided on the given spec: a spec that fails its checks still fails per
# artifact, as the others do.
// (
  let
    inherit (builtins) isAttrs any;
    peers = given.dn42Peers or null;
    auto = isAttrs given && (given.role or null) == "reflector" && isAttrs peers && any (p: isAttrs p && (p.latency or null) == "auto") (attrValues peers);
  in
  if auto then { dn42Latency = dn42.latency spec; } else { }
)
# Self-service DN42 peering (render/autopeer.nix renders its peers at
# runtime): where its state is, its settings, and services.bird's build-time
# check of the include (an empty stub: the runtime file is not in the
# sandbox). Only on a host that enables it, so other renders stay as they were.
// (
  let
    a = given.autopeer or null;
    on = builtins.isAttrs given && builtins.isAttrs a && a.enable or false == true && (given.role or null) == "reflector";
    include = defaults.autopeer.bird_include;
  in
  if on then
    {
      autopeer = {
        settings = spec.autopeer;
        paths = defaults.autopeer;
        nftTable = defaults.nftables_table;
        # networking.firewall.allowedUDPPortRanges: the WireGuard ports autopeers
        # get (render/autopeer.nix picks from this range), opened as the static
        # DN42 ports are (allowedUDPPorts, openFirewall); the lab's nixos-fw
        # copy reads the same.
        allowedUDPPortRanges =
          if spec.openFirewall then
            [
              {
                from = spec.autopeer.portMin;
                to = spec.autopeer.portMax;
              }
            ]
          else
            [ ];
        preCheckConfig = builtins.concatStringsSep "\n" [
          ": > autopeer.conf"
          "sed -i -e 's|include \"${include}\";|include \"autopeer.conf\";|' bird.conf"
        ];
      };
    }
  else
    { }
)

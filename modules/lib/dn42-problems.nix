# Host-spec rules of DN42 tunnels (what the option types cannot say), as
# { path; message; } for the module's assertions. Runs after the shape check:
# values are only compared here.
let
  inherit (builtins) attrNames attrValues concatMap filter elem isAttrs;
  util = import ./util.nix;
  checks = import ./checks.nix;
  render = import ./render/dn42.nix;
  inherit (util) optional;
  root = "services.ibgpTunnel";
  problem = path: message: { inherit path message; };
in
given:
let
  spec = render.normalize given;
  peers = spec.dn42Peers;
  tunnels = filter (name: isAttrs peers.${name} && isAttrs (peers.${name}.tunnel or null)) (attrNames peers);
  at = name: key: "${root}.dn42Peers.${name}.${key}";
  linkPorts = map (link: link.listenPort) (attrValues spec.links);
  linkInterfaces = map (link: link.interface) (attrValues spec.links);
  portOf = name: render.listenPortOf peers.${name};
  interfaceOf = name: render.interfaceOf name peers.${name};
in
concatMap (
  name:
  let
    t = peers.${name}.tunnel;
  in
  optional ((t.ipv4 == null) != (t.peerIpv4 == null)) (
    problem (at name "tunnel") "sets one of ipv4 and peerIpv4: the IPv4 point-to-point pair needs both"
  )
  ++ optional (elem (portOf name) linkPorts) (
    problem (at name "tunnel.listenPort") "${toString (portOf name)} is also an iBGP link's listen port: set a listenPort of its own"
  )
  ++ optional (elem (interfaceOf name) linkInterfaces) (
    problem (at name "interface") "${interfaceOf name} is also an iBGP link's interface: give the tunnel an interface of its own"
  )
) tunnels
++ map (port: problem "${root}.dn42Peers" "listen port ${toString port} is used by more than one DN42 tunnel: give each its own tunnel.listenPort") (
  checks.laterDuplicates toString (map portOf tunnels)
)
++ map (name: problem "${root}.dn42Peers" "interface \"${name}\" is used by more than one DN42 peer: give each its own interface") (
  checks.laterDuplicates toString (map interfaceOf (attrNames peers))
)
# A ROA file decides which DN42 routes are imported: plain http:// only when
# asked for (render refuses it too).
++ map (url: problem "${root}.dn42.roa" "${url} is plain http://, which anyone on the path can rewrite: use https://, or set allowInsecureUrls = true") (
  if isAttrs (spec.dn42.roa or null) && !(spec.dn42.roa.allowInsecureUrls or false) then render.insecureRoaUrls spec else [ ]
)

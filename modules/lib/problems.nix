# host spec -> list of { path, message } for what option types cannot say.
# The NixOS module turns each into an assertion; a message names the option
# and how to fix it.
let
  inherit (builtins)
    attrNames
    attrValues
    concatMap
    filter
    length
    match
    ;
  util = import ./util.nix;
  ip = import ./ip.nix;
  inherit (util) optional;

  problem = path: message: { inherit path message; };

  root = "services.ibgpTunnel";

  interfaceName = path: name:
    optional (match "[A-Za-z0-9_.-]{1,15}" name == null) (
      problem path "interface name \"${name}\" is not a valid Linux interface name: use 1 to 15 letters, digits, '-', '_' or '.'"
    );

  # A file path, not the key: a literal key or a Nix path would be copied
  # into the world-readable Nix store.
  keyFile = path: file:
    if file == null then
      [ (problem path "is not set: point it at a file outside the Nix store (with sops-nix: leave it unset and set ${root}.sops.file)") ]
    else
      optional (util.hasPrefix "/nix/store" file) (
        problem path "points into the Nix store (${file}), where every user can read the key: use a runtime path such as a sops-nix secret"
      );

  setReferences = spec: path: names:
    map (name: problem path "names prefix set \"${name}\", which ${root}.prefixSets does not define (defined: ${builtins.concatStringsSep ", " (attrNames spec.prefixSets)})")
      (filter (name: !(spec.prefixSets ? ${name})) names);

  linkProblems = spec: name: link:
    let
      path = "${root}.links.${name}";
      parsed = map ip.parseCidr link.ips;
      v4 = filter (c: c != null && c.family == "ipv4") parsed;
      v6 = filter (c: c != null && c.family == "ipv6") parsed;
      cidrOf = c: "${c.address}/${toString c.length}";
      isClient = spec.role == "client";
    in
    interfaceName "${path}.interface" link.interface
    ++ map (cidr: problem "${path}.ips" "\"${cidr}\" is not an address with prefix length such as 10.255.255.1/30")
      (filter (cidr: ip.parseCidr cidr == null) link.ips)
    ++ optional (length v4 != 1) (problem "${path}.ips" "needs exactly one IPv4 address (the tunnel's /30 or /31), found ${toString (length v4)}")
    ++ optional (length v6 != 1) (problem "${path}.ips" "needs exactly one global IPv6 address (the tunnel's /64 or /127), found ${toString (length v6)}; IPv6 routes over the IPv4 session need it (seed pitfall 4)")
    ++ concatMap (c:
      optional (c.length != 30 && c.length != 31) (problem "${path}.ips" "${cidrOf c}: a point-to-point tunnel takes a /30 or /31")
      ++ optional (ip.isNetworkOrBroadcast4 (cidrOf c) c.address) (problem "${path}.ips" "${cidrOf c} is the network or broadcast address of its /30: use one of the two host addresses")
      ++ optional (!(ip.inSubnet (cidrOf c) link.neighborAddress)) (problem "${path}.neighborAddress" "${link.neighborAddress} is not inside the link subnet ${cidrOf c}: use the other end's tunnel address")
      ++ optional (c.address == link.neighborAddress) (problem "${path}.neighborAddress" "${link.neighborAddress} is this host's own address: use the other end's tunnel address")
    ) v4
    ++ concatMap (c:
      optional (c.length != 64 && c.length != 127) (problem "${path}.ips" "${cidrOf c}: the tunnel's IPv6 takes a /64 or /127")
      ++ optional (ip.isLinkLocal6 c.address) (problem "${path}.ips" "${cidrOf c} is link-local: BIRD's direct protocol does not learn fe80::/10, so IPv6 routes would have no next hop; use a global or ULA address (seed pitfall 4)")
    ) v6
    ++ optional (link.peer.publicKey == null) (problem "${path}.peer.publicKey" "is not set: run `ibgp-tunnel keys` to generate keys and write the public keys into the plan")
    ++ optional (link.peer.publicKey != null && match "[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=" link.peer.publicKey == null) (problem "${path}.peer.publicKey" "\"${link.peer.publicKey}\" is not a WireGuard public key (44 characters of base64, as `wg pubkey` prints)")
    ++ keyFile "${path}.peer.presharedKeyFile" link.peer.presharedKeyFile
    ++ optional (isClient && link.peer.endpoint == null) (problem "${path}.peer.endpoint" "is not set: a client dials its reflector, give \"host:port\" (the VPS's public address and ${toString link.listenPort})");

  roleProblems = spec:
    if spec.role == "client" then
      optional (spec.dn42Peers != { }) (problem "${root}.dn42Peers" "is set on a client: eBGP to DN42 peers runs on the reflector (the VPS); move these peers to it")
      ++ optional (spec.uplinkInterfaces != [ ]) (problem "${root}.uplinkInterfaces" "is set on a client: clients masquerade ${root}.lanInterfaces into the tunnel instead")
    else
      optional (spec.lanInterfaces != [ ]) (problem "${root}.lanInterfaces" "is set on a reflector: reflectors masquerade tunnel traffic out of ${root}.uplinkInterfaces instead")
      ++ concatMap (name: interfaceName "${root}.uplinkInterfaces" name) spec.uplinkInterfaces;
in
spec:
let
  links = attrValues spec.links;
in
optional (spec.links == { }) (problem "${root}.links" "is empty: a host needs at least one tunnel link to a ${if spec.role == "client" then "reflector" else "client"}")
++ optional (ip.parseIPv4 spec.routerId == null) (problem "${root}.routerId" "\"${spec.routerId}\" is not an IPv4 address: BIRD router ids are dotted quads")
++ keyFile "${root}.privateKeyFile" spec.privateKeyFile
++ setReferences spec "${root}.importSets" spec.importSets
++ setReferences spec "${root}.kernelExportSets" spec.kernelExportSets
++ concatMap (peer: setReferences spec "${root}.dn42Peers.*.exportSets" peer.exportSets) (attrValues spec.dn42Peers)
++ map (name: problem "${root}.prefixSets.${name}" "\"${name}\" is not usable as a BIRD name: use letters, digits, '_' and '-', starting with a letter")
  (filter (name: match "[A-Za-z][A-Za-z0-9_-]*" name == null) (attrNames spec.prefixSets))
++ concatMap (name: linkProblems spec name spec.links.${name}) (attrNames spec.links)
++ map (name: problem "${root}.links" "interface \"${name}\" is used by more than one link: give each link its own interface")
  (util.duplicates (map (link: link.interface) links))
++ map (port: problem "${root}.links" "listen port ${toString port} is used by more than one link: give each link its own listenPort")
  (util.duplicates (map (link: link.listenPort) links))
++ concatMap (name: interfaceName "${root}.lanInterfaces" name) spec.lanInterfaces
++ roleProblems spec

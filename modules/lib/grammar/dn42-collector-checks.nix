# The rules of the DN42 route collector session, once, for the plan rules
# (plan/rules/dn42-collector.nix, TOML paths) and the host rules
# (spec/dn42-problems.nix, option paths). Each finding says which key of the
# record it is about (null: the record) and the fix; the caller adds the path.
let
  ip = import ../base/ip.nix;
  t = import ./tokens.nix;
  checks = import ./checks.nix;
  inherit (import ../base/util.nix) optional;
  at = key: message: { inherit key message; };
in
{
  # c: { role; dn42Peers (how many); neighbor; sourceAddress (or null); asn;
  #      ownAsn; ownPrefixes = [ { cidr; owner; } ] (every prefix of the plan
  #      or host: announcements, link subnets) }. Only called when enabled.
  problems =
    c:
    let
      neighborOk = t.address.problem c.neighbor == null;
      sourceOk = c.sourceAddress == null || t.address.problem c.sourceAddress == null;
      kind = checks.addressKind c.neighbor;
      inside = builtins.filter (p: ip.inSubnet p.cidr c.neighbor) c.ownPrefixes;
    in
    optional (c.role != "reflector") (at null "is set on a ${c.role}: only a reflector with DN42 peers talks to DN42's route collector; set it on the reflector")
    ++ optional (c.role == "reflector" && c.dn42Peers == 0) (
      at null "needs DN42 peers on this reflector: the collector is reached over DN42 (multihop) and gets the routes DN42 peers give us; add a DN42 peer or disable it"
    )
    ++ optional (!neighborOk) (at "neighbor" (t.address.problem c.neighbor))
    ++ optional (neighborOk && builtins.elem kind [ "unspecified" "multicast" "loopback" "link-local" ]) (
      at "neighbor" "${c.neighbor} is a ${kind} address: the collector is several hops away, give its DN42 address (fd42:4242:2601:ac12::1 or 172.20.129.4)"
    )
    ++ optional (neighborOk && inside != [ ]) (
      at "neighbor" "${c.neighbor} is inside our own ${(builtins.head inside).owner} (${(builtins.head inside).cidr}): the collector is outside our network, give its DN42 address (fd42:4242:2601:ac12::1 or 172.20.129.4)"
    )
    ++ optional (t.asn.problem c.asn == null && c.asn == c.ownAsn) (
      at "asn" "${toString c.asn} is our own AS: the collector is an eBGP neighbour (AS4242422602)"
    )
    ++ optional (!sourceOk) (at "sourceAddress" (t.address.problem c.sourceAddress))
    ++ optional (neighborOk && sourceOk && c.sourceAddress != null && ip.familyOf c.sourceAddress != ip.familyOf c.neighbor) (
      at "sourceAddress" "${c.sourceAddress} is ${ip.familyOf c.sourceAddress} but the neighbor ${c.neighbor} is ${ip.familyOf c.neighbor}: give an address of the neighbor's family"
    );
}

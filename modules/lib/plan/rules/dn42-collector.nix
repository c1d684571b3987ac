# Plan rules of the DN42 route collector session ([hosts.<h>.dn42_collector]):
# the checker of grammar/dn42-collector-checks.nix with TOML paths, our own
# prefixes being every host's announcements, the anycast prefixes and every
# link's subnets.
let
  inherit (builtins) attrNames concatMap filter isAttrs isString isList length;
  inherit (import ./common.nix) error mapHosts families;
  collector = import ../../grammar/dn42-collector-checks.nix;
  keyOf = { neighbor = "neighbor"; asn = "asn"; sourceAddress = "source_address"; };

  strings = value: if isList value then filter isString value else [ ];
  ownPrefixes =
    plan:
    concatMap (
      hostName:
      concatMap (family: map (cidr: { inherit cidr; owner = "hosts.${hostName}.announce.${family}"; }) (strings (plan.hosts.${hostName}.announce or { }).${family} or [ ])) families
    ) (attrNames plan.hosts)
    ++ concatMap (family: map (cidr: { inherit cidr; owner = "anycast.${family}"; }) (strings (plan.anycast or { }).${family} or [ ])) families
    ++ concatMap (
      linkName:
      concatMap (
        family:
        let
          facts = plan._links.${linkName}.${family};
        in
        if facts.problem == null then [ { cidr = facts.text; owner = "links.${linkName}.${family}"; } ] else [ ]
      ) (filter (family: (plan.links.${linkName}.${family} or null) != null) families)
    ) (attrNames (plan.links or { }));
in
plan:
mapHosts plan (
  hostName: host:
  let
    c = host.dn42_collector or { };
    base = [ "hosts" hostName "dn42_collector" ];
  in
  if !(isAttrs c) || !(c.enable or false == true) then
    [ ]
  else
    map (f: error (if f.key == null then base else base ++ [ keyOf.${f.key} ]) f.message) (collector.problems {
      role = host.role or "client";
      dn42Peers = if isAttrs (host.dn42_peers or null) then length (attrNames host.dn42_peers) else 0;
      neighbor = c.neighbor or "fd42:4242:2601:ac12::1";
      sourceAddress = c.source_address or null;
      asn = c.asn or 4242422602;
      ownAsn = plan.asn or null;
      ownPrefixes = ownPrefixes plan;
    })
)

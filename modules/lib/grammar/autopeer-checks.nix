# The rules of self-service peering's own settings ([hosts.<h>.autopeer] /
# services.ibgpTunnel.autopeer), once, for the plan rules (plan/rules/
# autopeer.nix, TOML paths) and the host rules (spec/dn42-problems.nix,
# option paths). Each finding names the record's plan key (null: the record)
# and the fix; the caller turns the key into its path.
let
  inherit (builtins) attrNames concatMap filter isAttrs isInt isList isString;
  inherit (import ../base/util.nix) optional;
  fields = import ./fields.nix;
  checks = import ./checks.nix;
  record = builtins.head (filter (f: f.key == "autopeer") (fields.planOf "host"));
  at = key: message: { inherit key message; };
in
{
  # The record's fields (key, option, grammar), for the callers' path mapping.
  inherit (record) fields;

  # a: the record by plan key (defaults filled in); role: the host's;
  # prefixSets: name -> { ipv4; ipv6; } (the sets export_sets may name).
  problems =
    { a, role, prefixSets }:
    let
      value = f: a.${f.key} or null;
      grammar = concatMap (
        f:
        let
          kind = fields.kindOf f;
          v = value f;
          problem = if kind == null || v == null then null else if f.type == "strList" then (if isList v then null else "is not a list of names") else kind.problem v;
        in
        optional (problem != null) (at f.key problem)
      ) record.fields;
      ints = isInt (a.port_min or null) && isInt (a.port_max or null) && isInt (a.max_peers or null) && isInt (a.max_per_asn or null);
      sets = filter isString (if isList (a.export_sets or null) then a.export_sets else [ ]);
    in
    grammar
    ++ (
      if a.enable or false != true then
        [ ]
      else
        optional (role != "reflector") (at null "is enabled on a ${toString role}: DN42 peers (autopeered ones too) are the reflector's; enable it on the reflector")
        ++ optional (a.link_local or null == null) (
          at "link_local" "is required when autopeer is enabled: our link-local IPv6 address with /64 on every autopeer tunnel, such as fe80::38/64"
        )
        ++ optional (ints && a.port_min > a.port_max) (at "port_max" "${toString a.port_max} is below port_min ${toString a.port_min}: give the highest port of the range")
        ++ optional (ints && a.port_min <= a.port_max && a.port_max - a.port_min + 1 < a.max_peers) (
          at "port_max" "the range ${toString a.port_min}-${toString a.port_max} has ${toString (a.port_max - a.port_min + 1)} ports for max_peers = ${toString a.max_peers} tunnels: widen it or lower max_peers"
        )
        ++ optional (ints && a.max_per_asn > a.max_peers) (at "max_per_asn" "${toString a.max_per_asn} is above max_peers ${toString a.max_peers}: at most max_peers per ASN")
        ++ concatMap (
          name:
          let
            outside = if isAttrs (prefixSets.${name} or null) then checks.outsideDn42 prefixSets.${name} else [ ];
          in
          optional (!(prefixSets ? ${name})) (at "export_sets" "names prefix set \"${name}\", which is not defined; define it or use one of: ${builtins.concatStringsSep ", " (attrNames prefixSets)}")
          ++ optional (outside != [ ]) (at "export_sets" (checks.exportProblem name outside))
        ) sets
    );
}

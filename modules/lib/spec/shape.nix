# The one door into the renderers. `shape` says, once, which token kind every
# value of a host spec is (what reaches bird.conf, the nft rules, the
# WireGuard settings or a sops secret name); two readings of it:
#   checked spec   a copy holding only those fields, each leaf through its
#                  kind's emitter (a throw naming the option and the fix),
#                  lazily, so asking for the link names (sops secret names)
#                  does not force the key paths sops-nix derives from them;
#   problems spec  every leaf's problem as { path; message; }, for assertions.
# So a spec that skipped every check (hand-made, or from a plan nobody ran
# `check` on) cannot change the structure of what is rendered.
let
  inherit (builtins)
    attrNames
    concatLists
    concatMap
    elemAt
    genList
    isAttrs
    isBool
    isList
    length
    listToAttrs
    mapAttrs
    ;
  t = import ../grammar/tokens.nix;
  dn42 = import ./dn42.nix;

  root = "services.ibgpTunnel";

  # --- the shape's vocabulary ------------------------------------------------

  leaf = kind: { type = "leaf"; inherit kind; };
  listOf = of: { type = "list"; inherit of; };
  attrsOf = of: { type = "attrs"; inherit of; };
  record = fields: { type = "record"; inherit fields; };
  nullOr = of: { type = "nullOr"; inherit of; };
  # A field a record may leave out (read as null): the table's specOptional
  # (the two-reflector fields, so specs written before them keep their meaning).
  optional = of: { type = "optional"; inherit of; };
  pair = of: { type = "pair"; inherit of; };
  # families: a record whose lists (ipv4, ipv6) may be left out
  # ({ ipv4 = [ ... ]; } alone), made by tableRecord below.

  bool = {
    problem = value: if isBool value then null else "${t.show value} is not true or false";
  };

  # The shape of the field table's fields (../grammar/fields.nix), each with
  # its grammar: nullable -> nullOr, specOptional -> optional; a record's,
  # a recordList's or a recordAttrs' fields make a record of their own, or
  # `families` when they are families.nix's two lists (ipv4, ipv6).
  fields = import ../grammar/fields.nix;
  fieldShape =
    f:
    let
      one = if f.type == "bool" then leaf bool else leaf (fields.kindOf f);
      base =
        if f.type == "strList" then
          listOf one
        else if f.type == "record" then
          tableRecord f.fields
        else if f.type == "recordList" then
          listOf (tableRecord f.fields)
        else if f.type == "recordAttrs" then
          attrsOf (tableRecord f.fields)
        else
          one;
    in
    if f.specOptional or false then
      optional base
    else if f.nullable or false then
      nullOr base
    else
      base;
  shapeOf = list: listToAttrs (map (f: { name = f.option; value = fieldShape f; }) list);
  tableShape = scope: shapeOf (fields.of scope);
  tableRecord =
    list:
    let
      own = map fields.optionOf (builtins.filter (f: f.option != null) list);
    in
    if fields.isFamilies list then
      {
        type = "families";
        fields = shapeOf own;
      }
    else
      record (shapeOf own);

  shape = record (
    # role, asn, routerId, announce, dn42Inbound, ...: fields.nix's plan and
    # host fields (a plan-only one, such as anycast, has no option).
    tableShape "plan"
    // tableShape "host"
    // {
      # The scopes' containers: each end's view of a link (interface, ips,
      # peer, ...: fields.nix's linkEnd), the DN42 peers, ROA and tuning.
      links = attrsOf (record (tableShape "linkEnd"));
      # asn, neighbor, interface, exportSets, latency, ...: fields.nix's.
      dn42Peers = attrsOf (
        record (
          tableShape "dn42Peer"
          // {
            # ./dn42.nix: the peer's WireGuard tunnel (null: configured elsewhere).
            # publicKey, endpoint, linkLocal, ...: fields.nix's dn42Tunnel.
            tunnel = nullOr (record (tableShape "dn42Tunnel"));
          }
        )
      );
      dn42 = record {
        # Not a plan field (a secret's runtime path): written here.
        privateKeyFile = leaf t.runtimePath;
        # enable, ipv4Url, interval, ...: fields.nix's dn42Roa.
        roa = record (tableShape "dn42Roa");
      };
      # bfd, holdTime, ...: fields.nix's tuning fields. Looser than the
      # options: every number (and the action) may be null (plainTuning).
      tuning = record (
        listToAttrs (
          map (f: {
            name = f.option;
            value =
              if f.type == "bool" then
                leaf bool
              else
                nullOr (if f.type == "intList" then pair (leaf (fields.kindOf f)) else leaf (fields.kindOf f));
          }) (fields.of "tuning")
        )
      );
      # Not plan fields, so not the table's: the module's own options
      # (test_fields.py's NOT_PLAN_FIELDS), written here.
      openFirewall = leaf bool;
      privateKeyFile = nullOr (leaf t.runtimePath);
      # services.ibgpTunnel.bird (bird-layout.nix): whole bird.conf or merged.
      bird = record {
        standalone = leaf bool;
        kernelProtocols = leaf bool;
      };
    }
  );

  # --- reading it ------------------------------------------------------------

  # Option paths stay on one line even for a name that is the attack.
  key = name: if t.name.problem name == null then name else t.show name;

  # What is wrong with `value` as a whole (not its parts), or null.
  outer =
    s: value:
    if s.type == "list" && !(isList value) then
      "${t.show value} is not a list"
    else if s.type == "pair" && !(isList value && length value == 2) then
      "${t.show value} is not a list of two numbers [ minimum maximum ]"
    else if (s.type == "attrs" || s.type == "record" || s.type == "families") && !(isAttrs value) then
      "${t.show value} is not an attribute set"
    else if s.type == "record" then
      let
        missing = builtins.filter (field: !(value ? ${field}) && s.fields.${field}.type != "optional") (attrNames s.fields);
      in
      if missing == [ ] then null else "is missing ${builtins.concatStringsSep ", " missing}"
    else
      null;

  fieldOf = value: field: of: if of.type == "optional" then value.${field} or null else value.${field};

  fail = path: message: throw "ibgp-tunnel: ${path}: ${message}";

  emit =
    s: path: value:
    let
      wrong = outer s value;
      item = i: emit s.of "${path}[${toString i}]" (elemAt value i);
    in
    if s.type == "leaf" then
      (let p = s.kind.problem value; in if p == null then value else fail path p)
    else if s.type == "nullOr" || s.type == "optional" then
      (if value == null then null else emit s.of path value)
    else if wrong != null then
      fail path wrong
    else if s.type == "list" || s.type == "pair" then
      genList item (length value)
    else if s.type == "attrs" then
      listToAttrs (
        map (
          name:
          let
            # The name's path once: key checks the name (a regex) to quote it.
            at = "${path}.${key name}";
          in
          {
            name = emit (leaf t.name) at name;
            value = emit s.of at value.${name};
          }
        ) (attrNames value)
      )
    else if s.type == "families" then
      mapAttrs (field: of: emit of "${path}.${field}" (value.${field} or [ ])) s.fields
    else
      mapAttrs (field: of: emit of "${path}.${field}" (fieldOf value field of)) s.fields;

  problemsOf =
    s: path: value:
    let
      wrong = outer s value;
      item = i: problemsOf s.of "${path}[${toString i}]" (elemAt value i);
    in
    if s.type == "leaf" then
      (let p = s.kind.problem value; in if p == null then [ ] else [ { inherit path; message = p; } ])
    else if s.type == "nullOr" || s.type == "optional" then
      (if value == null then [ ] else problemsOf s.of path value)
    else if wrong != null then
      [ { inherit path; message = wrong; } ]
    else if s.type == "list" || s.type == "pair" then
      concatLists (genList item (length value))
    else if s.type == "attrs" then
      concatMap (name: let at = "${path}.${key name}"; in problemsOf (leaf t.name) at name ++ problemsOf s.of at value.${name}) (
        attrNames value
      )
    else if s.type == "families" then
      concatMap (field: problemsOf s.fields.${field} "${path}.${field}" (value.${field} or [ ])) (attrNames s.fields)
    else
      concatMap (field: problemsOf s.fields.${field} "${path}.${field}" (fieldOf value field s.fields.${field})) (attrNames s.fields);

  # A spec from a plan (hostFromPlan) has no say in services.ibgpTunnel.bird:
  # it renders the whole bird.conf.
  withLayout =
    given:
    given
    // {
      bird = {
        standalone = true;
        kernelProtocols = true;
      }
      // (given.bird or { });
    };
in
{
  # Specs without the DN42 fields (older or hand-made) get their defaults.
  inherit shape;
  checked = given: emit shape root (dn42.normalize (withLayout given));
  problems = given: problemsOf shape root (dn42.normalize (withLayout given));
}

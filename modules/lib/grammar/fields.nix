# The plan fields declared once. Each entry says where the field lives in the
# plan (scope + TOML key) and in the options (option name in the same place),
# its type and grammar (a token of tokens.nix / dn42-tokens.nix, or an inline
# range), default, description and which hosts set it. Generated from it:
# the NixOS options (modules/ibgp-tunnel/field-options.nix, for options.nix
# and dn42.nix), the spec's shape (spec/shape.nix), the plan -> host spec
# mapping (plan/host.nix, plan/dn42-peer.nix), the module's plan
# field list (modules/ibgp-tunnel/plan.nix), the defaults a hand-made spec
# may leave out (spec/dn42.nix), and through `json` the pydantic fields of
# the Python helper and with them plan.schema.json (python/src/ibgp_tunnel/
# fields.json is that JSON, committed; a test keeps it in sync).
#
# scope: "plan" = the plan's top level / services.ibgpTunnel.<option> (fields/plan.nix);
#        "host" = [hosts.<h>] / services.ibgpTunnel.<option> (fields/host.nix);
#        "dn42Peer" = [hosts.<h>.dn42_peers.<p>] / services.ibgpTunnel.dn42Peers.<p>.<option>
#          (fields/dn42-peer.nix);
#        "dn42Tunnel" = [hosts.<h>.dn42_peers.<p>] / ...dn42Peers.<p>.tunnel.<option>
#          (fields/dn42-tunnel.nix, which also says what planOptional and optionView are);
#        "dn42Roa" = [hosts.<h>.dn42_roa] / services.ibgpTunnel.dn42.roa.<option>
#          (fields/dn42-roa.nix);
#        "tuning" = [tuning] / services.ibgpTunnel.tuning.<option> (fields/tuning.nix,
#          which also says what shapeOnly and optionType are);
#        "link" = [links.<l>], plan only (optionPath and option null, fields/link.nix);
#        "linkEnd" = services.ibgpTunnel.links.<l>.<option>, options only: each
#          end's view of a link, derived from the plan (fields/link-end.nix).
# optionPath: where the scope's options sit below services.ibgpTunnel (and in
#   the host spec), "<name>" standing for an attribute name.
# key null: an option only (not a plan key); option null: the plan only.
# derived: the value is not the plan key's as it is; plan/host.nix computes
#   it, the note says from what (fromPlan leaves such a field out).
# type: bool | int | intList | str | strList | enum, or a table of fields:
#   record (one), recordList (a list of them), recordAttrs (an attribute set of
#   them), whose `fields` are entries of their own (key, option, type, ...),
#   `model` and `modelDoc` naming the plan model (pydantic) they make.
#   int/intList/str/strList take their grammar
#   from `token` (a dotted path into tokens.nix); an int may give low, high
#   and expect inline instead; enum lists `values`; an intList gives its `length`.
# also: words an int field takes besides its numbers (dn42Peer latency's
#   "auto"); its grammar is the int's with those words (tokens.orWords).
# No `default` and not `nullable`: required. nullable: the option may be
#   null (and is by default, unless `default` says otherwise); the plan
#   leaves the key out (TOML has no null).
# optionView: how the option differs from the plan key (fields/dn42-tunnel.nix).
# check: the plan rules check the value against its grammar here
#   (planProblems), not by hand elsewhere.
# specOptional: a host spec made by hand may leave the option out (read as
#   null; spec/shape.nix's `optional`), so that specs written before it keep
#   their meaning; every other option of the spec's shape must be there.
#
# Not declarations, so not here: the rules that relate two keys (tuning's
# checks.nix tuningProblems, the link rules in plan/rules/links.nix, every
# plan and host rule): a rule reads fields, it does not declare one.
let
  inherit (builtins)
    concatMap
    filter
    foldl'
    isString
    listToAttrs
    split
    ;
  tokens = import ./tokens.nix;
  util = import ../base/util.nix;

  table =
    map (f: { scope = "plan"; optionPath = [ ]; } // f) (import ./fields/plan.nix)
    ++ map (f: { scope = "host"; optionPath = [ ]; } // f) (import ./fields/host.nix)
    ++ map (f: { scope = "dn42Peer"; optionPath = [ "dn42Peers" "<name>" ]; } // f) (import ./fields/dn42-peer.nix)
    ++ map (f: { scope = "dn42Tunnel"; } // f) (import ./fields/dn42-tunnel.nix)
    ++ map (f: { scope = "dn42Roa"; } // f) (import ./fields/dn42-roa.nix)
    ++ map (f: { scope = "tuning"; } // f) (import ./fields/tuning.nix)
    ++ map (f: { scope = "link"; } // f) (import ./fields/link.nix)
    ++ map (f: { scope = "linkEnd"; } // f) (import ./fields/link-end.nix);

  tokenOf = path: foldl' (set: name: set.${name}) tokens (filter isString (split "[.]" path));

  # The field as an option (and in the host spec): the plan's, unless optionView says otherwise.
  optionOf = f: removeAttrs f [ "optionView" ] // (f.optionView or { });

  # Required as an option / in the host spec.
  required = f: !(f ? default) && !(f.nullable or false);
  # Required in the plan.
  planRequired = f: required f && !(f.planOptional or false);
  defaultOf = f: f.default or null;

  # The grammar a field's values are checked (and emitted) with; null for bool.
  kindOf = f: if f ? also then tokens.orWords f.also (baseKindOf f) else baseKindOf f;
  baseKindOf =
    f:
    if f ? token then
      tokenOf f.token
    else if f.type == "int" then
      tokens.intKind { inherit (f) low high expect; }
    else if f.type == "enum" then
      tokens.enumKind f.values
    else
      null;

  # Grouped once: every stage asks for scopes, the spec's shape for six.
  byScope = builtins.groupBy (f: f.scope) table;
  planOf = scope: byScope.${scope} or [ ];

  fromFields =
    list: attrs:
    listToAttrs (
      map (f: {
        name = f.option;
        value =
          if f.key == null then
            defaultOf (optionOf f)
          else if planRequired f then
            attrs.${f.key}
          else if attrs ? ${f.key} then
            (if f.type == "record" then fromFields f.fields attrs.${f.key} else attrs.${f.key})
          else if f.type == "record" then
            fromFields f.fields { }
          else
            defaultOf (optionOf f);
      }) (filter (f: f.option != null && !(f ? derived) && (f.key != null || !required (optionOf f))) list)
    );

  # A scope's fields as options (optionOf each), the plan-only ones left out.
  of = scope: map optionOf (filter (f: f.option != null) (planOf scope));
  isTable = f: builtins.elem f.type [ "record" "recordList" "recordAttrs" ];
  # A table's fields are families.nix's two prefix lists (ipv4, ipv6, each
  # [ ] by default): the spec may leave either out.
  isFamilies = list: map (f: f.option) list == [ "ipv4" "ipv6" ] && builtins.all (f: f.type == "strList" && f.default or null == [ ]) list;
  find = scope: option: builtins.head (filter (f: f.option == option) (of scope) ++ [ (throw "ibgp-tunnel: fields.nix has no ${scope} field ${option}") ]);
  jsonOf =
    f:
    let
      k = kindOf f;
    in
    removeAttrs f [ "defaultText" "optionView" "planOptional" "optionType" "specOptional" ]
    // {
      required = planRequired f;
      nullable = (f.nullable or false) || (f.planOptional or false);
    }
    // (if f ? fields then { fields = map jsonOf f.fields; } else { })
    // (if k != null && k ? low then { inherit (k) low high; } else { })
    // (if k != null && k ? values then { inherit (k) values; } else { })
    // (if k != null && k ? regex then { inherit (k) regex expect; } else { });
in
{
  inherit table required planRequired defaultOf kindOf of planOf optionOf isTable isFamilies;

  # The option names of a scope (plan.nix's static field list).
  optionNames = scope: map (f: f.option) (of scope);

  # The options below services.ibgpTunnel that hold a scope's options
  # (links, dn42Peers, dn42, tuning): plan.nix's field list.
  containers = util.uniqueStrings (map (f: builtins.head f.optionPath) (filter (f: f.optionPath != null && f.optionPath != [ ]) table));

  # The grammar of one field, for an emitter: (kind "dn42Peer" "importLimit").emit path value.
  kind = scope: option: kindOf (find scope option);

  # A plan table of `scope` -> its option values, defaults filled in (the
  # plan's value as it is: a field with an optionView is mapped by the
  # caller, a derived one left to it). A record's fields likewise.
  fromPlan = scope: fromFields (planOf scope);

  # What a spec made by hand may leave out: every field that is not required.
  specDefaults =
    scope:
    listToAttrs (
      map (f: {
        name = f.option;
        value = defaultOf f;
      }) (filter (f: !required f) (of scope))
    );

  # The plan rules of the fields marked `check`: each present value against
  # its grammar. tokenError: plan/rules/common.nix's (kind -> path -> value -> findings).
  planChecks =
    scope: tokenError: at: attrs:
    concatMap (f: if (f.check or false) && f.key != null && attrs ? ${f.key} then tokenError (kindOf f) (at f.key) attrs.${f.key} else [ ]) (planOf scope);

  # The table as JSON data, grammars resolved (python/src/ibgp_tunnel/fields.json):
  # the plan's view (required, nullable: in the plan; a planOptional field is
  # nullable there), with optionPath.
  json = map jsonOf table;
}

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
# scope: "host" = [hosts.<h>] / services.ibgpTunnel.<option> (fields/host.nix);
#        "dn42Peer" = [hosts.<h>.dn42_peers.<p>] / services.ibgpTunnel.dn42Peers.<p>.<option>
#          (fields/dn42-peer.nix);
#        "dn42Tunnel" = [hosts.<h>.dn42_peers.<p>] / ...dn42Peers.<p>.tunnel.<option>
#          (fields/dn42-tunnel.nix, which also says what planOptional and optionView are);
#        "tuning" = [tuning] / services.ibgpTunnel.tuning.<option> (fields/tuning.nix,
#          which also says what shapeOnly and optionType are);
#        "link" = [links.<l>], plan only (optionPath and option null: each end's
#          link options are derived, fields/link.nix).
# optionPath: where the scope's options sit below services.ibgpTunnel (and in
#   the host spec), "<name>" standing for an attribute name.
# type: bool | int | intList | str | strList | enum. int/intList/str/strList take their grammar
#   from `token` (a dotted path into tokens.nix); an int may give low, high
#   and expect inline instead; enum lists `values`; an intList gives its `length`.
# No `default` and not `nullable`: required. nullable: the option may be
#   null (and is by default, unless `default` says otherwise); the plan
#   leaves the key out (TOML has no null).
# check: the plan rules check the value against its grammar here
#   (planProblems), not by hand elsewhere.
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

  table =
    map (f: { scope = "host"; optionPath = [ ]; } // f) (import ./fields/host.nix)
    ++ map (f: { scope = "dn42Peer"; optionPath = [ "dn42Peers" "<name>" ]; } // f) (import ./fields/dn42-peer.nix)
    ++ map (f: { scope = "dn42Tunnel"; } // f) (import ./fields/dn42-tunnel.nix)
    ++ map (f: { scope = "tuning"; } // f) (import ./fields/tuning.nix)
    ++ map (f: { scope = "link"; } // f) (import ./fields/link.nix);

  tokenOf = path: foldl' (set: name: set.${name}) tokens (filter isString (split "[.]" path));

  # The field as an option (and in the host spec): the plan's, unless optionView says otherwise.
  optionOf = f: removeAttrs f [ "optionView" ] // (f.optionView or { });

  # Required as an option / in the host spec.
  required = f: !(f ? default) && !(f.nullable or false);
  # Required in the plan.
  planRequired = f: required f && !(f.planOptional or false);
  defaultOf = f: f.default or null;

  # The grammar a field's values are checked (and emitted) with; null for bool.
  kindOf =
    f:
    if f ? token then
      tokenOf f.token
    else if f.type == "int" then
      tokens.intKind { inherit (f) low high expect; }
    else if f.type == "enum" then
      tokens.enumKind f.values
    else
      null;

  planOf = scope: filter (f: f.scope == scope) table;
  # A scope's fields as options (optionOf each).
  of = scope: map optionOf (planOf scope);
  find = scope: option: builtins.head (filter (f: f.option == option) (of scope) ++ [ (throw "ibgp-tunnel: fields.nix has no ${scope} field ${option}") ]);
in
{
  inherit table required planRequired defaultOf kindOf of planOf optionOf;

  # The option names of a scope (plan.nix's static field list).
  optionNames = scope: map (f: f.option) (of scope);

  # The grammar of one field, for an emitter: (kind "dn42Peer" "importLimit").emit path value.
  kind = scope: option: kindOf (find scope option);

  # A plan table of `scope` -> its option values, defaults filled in (the
  # plan's value as it is: a field with an optionView is mapped by the caller).
  fromPlan =
    scope: attrs:
    listToAttrs (
      map (f: {
        name = f.option;
        value = if planRequired f then attrs.${f.key} else attrs.${f.key} or (defaultOf f);
      }) (planOf scope)
    );

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
    concatMap (f: if (f.check or false) && attrs ? ${f.key} then tokenError (kindOf f) (at f.key) attrs.${f.key} else [ ]) (planOf scope);

  # The table as JSON data, grammars resolved (python/src/ibgp_tunnel/fields.json):
  # the plan's view (required, nullable: in the plan; a planOptional field is
  # nullable there), with optionPath.
  json = map (
    f:
    let
      k = kindOf f;
    in
    removeAttrs f [ "defaultText" "optionView" "planOptional" "optionType" ]
    // {
      required = planRequired f;
      nullable = (f.nullable or false) || (f.planOptional or false);
    }
    // (if k != null && k ? low then { inherit (k) low high; } else { })
    // (if k != null && k ? values then { inherit (k) values; } else { })
    // (if k != null && k ? regex then { inherit (k) regex expect; } else { })
  ) table;
}

# The NixOS options of one scope of the field table
# (modules/lib/grammar/fields.nix): type from the field's type and grammar,
# default, example, description; a record's fields become a submodule's
# options. Used by ./options.nix and ./dn42.nix:
#   fieldOptions scope given
# where `given` holds, by option name, what the table cannot say because it
# depends on the configuration (a default from sops or the host's role, the
# link's name): mkOption arguments, or for a record its fields' `given`.
lib:
let
  inherit (lib) mkOption types literalExpression;
  fields = (import ../lib).fields;
  typeOf = kind: types.strMatching kind.regex // { description = "string, ${kind.expect}"; };

  fieldType =
    f: given:
    let
      k = fields.kindOf f;
      record = types.submodule { options = optionsOf (map fields.optionOf f.fields) given; };
      base =
        {
          bool = types.bool;
          int = types.ints.between k.low k.high;
          intList = types.listOf (types.ints.between k.low k.high);
          enum = types.enum k.values;
          str = typeOf k;
          strList = types.listOf (typeOf k);
          inherit record;
          recordList = types.listOf record;
          recordAttrs = types.attrsOf record;
        }
        .${f.type};
      # An int that also takes words ("auto"): either.
      words = if f ? also then types.either base (types.enum f.also) else base;
      own = if f ? optionType then f.optionType types else words;
    in
    if f.nullable or false then types.nullOr own else own;

  optionsOf =
    list: given:
    builtins.listToAttrs (
      map (
        f:
        let
          own = given.${f.option} or { };
          isTable = fields.isTable f;
        in
        {
          name = f.option;
          value = mkOption (
            {
              type = fieldType f (if isTable then own else { });
              inherit (f) description;
            }
            // lib.optionalAttrs (!fields.required f) { default = fields.defaultOf f; }
            // lib.optionalAttrs (f ? example) { inherit (f) example; }
            // lib.optionalAttrs (f ? defaultText) { defaultText = literalExpression f.defaultText; }
            // lib.optionalAttrs (!isTable) own
          );
        }
      ) list
    );
in
scope: optionsOf (fields.of scope)

# The NixOS options of one scope of the field table
# (modules/lib/grammar/fields.nix): type from the field's type and grammar,
# default, example, description. Used by ./options.nix and ./dn42.nix.
lib:
let
  inherit (lib) mkOption types literalExpression;
  fields = (import ../lib).fields;
  typeOf = kind: types.strMatching kind.regex // { description = "string, ${kind.expect}"; };

  fieldType =
    f:
    let
      k = fields.kindOf f;
      base =
        {
          bool = types.bool;
          int = types.ints.between k.low k.high;
          intList = types.listOf (types.ints.between k.low k.high);
          enum = types.enum k.values;
          str = typeOf k;
          strList = types.listOf (typeOf k);
        }
        .${f.type};
      own = if f ? optionType then f.optionType types else base;
    in
    if f.nullable or false then types.nullOr own else own;
in
scope:
builtins.listToAttrs (
  map (f: {
    name = f.option;
    value = mkOption (
      {
        type = fieldType f;
        inherit (f) description;
      }
      // lib.optionalAttrs (!fields.required f) { default = fields.defaultOf f; }
      // lib.optionalAttrs (f ? example) { inherit (f) example; }
      // lib.optionalAttrs (f ? defaultText) { defaultText = literalExpression f.defaultText; }
    );
  }) (fields.of scope)
)

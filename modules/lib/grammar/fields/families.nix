# A record of two prefix lists, ipv4 and ipv6 (announce, anycast, prefix_sets'
# sets, importPrefixes, internalPrefixes): the entry's `fields`, each list of
# the token `token`4 / `token`6. plan: the plan's descriptions of the two
# lists (null: option only); option: the options' (null: as the plan's).
{ token, plan ? null, option ? null }:
let
  one = family: {
    key = family;
    option = family;
    type = "strList";
    token = "${token}${if family == "ipv4" then "4" else "6"}";
    default = [ ];
    description = if plan != null then plan.${family} else option.${family};
  }
  // (if plan != null && option != null then { optionView.description = option.${family}; } else { });
in
[ (one "ipv4") (one "ipv6") ]

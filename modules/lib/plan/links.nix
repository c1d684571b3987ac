# Who a plan's links join. A link joins a reflector to a client, or (issue
# #13) two reflectors, whose `client` end is then the one that dials. Shared
# by hostFromPlan, the plan rules and monitoring's expected routes; it reads a
# plan nobody has checked yet too (the plan rules run on one), so a name of
# the wrong type is simply no host. Builtins only.
let
  inherit (builtins) attrValues concatMap filter isString;
  util = import ../base/util.nix;

  roleOf = plan: name: if isString name then (plan.hosts.${name} or { }).role or null else null;

  linksOf = plan: attrValues (plan.links or { });

  # A link whose both ends are reflectors.
  betweenReflectors = plan: link: roleOf plan (link.client or null) == "reflector";

  # The clients linked to `reflector`.
  clientsOf =
    plan: reflector:
    map (link: link.client) (
      filter (link: (link.reflector or null) == reflector && !(betweenReflectors plan link)) (linksOf plan)
    );

  # The reflectors linked to `reflector`.
  twinsOf =
    plan: reflector:
    map (link: if link.reflector == reflector then link.client else link.reflector) (
      filter (link: betweenReflectors plan link && ((link.reflector or null) == reflector || link.client == reflector)) (
        linksOf plan
      )
    );

  # What `reflector` sends its clients and its twins of the plan's own
  # prefixes: its statics and its clients' announcements.
  reflectedBy =
    plan: reflector:
    let
      announceOf = name: (plan.hosts.${name} or { }).announce or { };
      all = map announceOf ([ reflector ] ++ clientsOf plan reflector);
      family = name: util.uniqueStrings (concatMap (a: a.${name} or [ ]) all);
    in
    {
      ipv4 = family "ipv4";
      ipv6 = family "ipv6";
    };
in
{
  inherit betweenReflectors clientsOf twinsOf reflectedBy;
}

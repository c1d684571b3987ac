# The plan-wide fields of the table (../fields.nix): top-level keys of the
# plan / services.ibgpTunnel.<option> (every host of the plan gets the same).
let
  defaults = import ../../base/defaults.nix;
  families = import ./families.nix;
in
map (f: { roles = [ "reflector" "client" ]; } // f) [
  {
    key = "asn";
    option = "asn";
    type = "int";
    token = "asn";
    example = 4242420038;
    description = "The network's own ASN (32-bit); DN42 uses 4242420000-4242429999.";
    optionView.description = "Own AS number (DN42: 4242420000-4242429999).";
  }
  {
    key = "prefix_sets";
    option = "prefixSets";
    type = "recordAttrs";
    model = "PrefixSet";
    modelDoc = "A named set of BIRD prefix patterns, defined once in bird.conf.";
    fields = families {
      token = "pattern";
      plan = {
        ipv4 = "BIRD prefix patterns, e.g. \"172.20.0.0/14{21,29}\", \"172.31.0.0/16+\".";
        ipv6 = "BIRD prefix patterns, e.g. \"fd00::/8{44,64}\".";
      };
      option = {
        ipv4 = "IPv4 prefix patterns in BIRD syntax, e.g. `172.20.0.0/14{21,29}`.";
        ipv6 = "IPv6 prefix patterns in BIRD syntax, e.g. `fd00::/8{44,64}`.";
      };
    };
    default = { };
    description = "Named prefix sets; a set named like one in defaults.toml (dn42) replaces it.";
    # plan/host.nix lays the plan's sets over defaults.toml's.
    derived = "defaults.toml's [prefix_sets] with the plan's laid over them";
    optionView = {
      default = builtins.mapAttrs (_: set: { inherit (set) ipv4 ipv6; }) defaults.prefix_sets;
      defaultText = "{ dn42 = <the DN42 filter guide's sets>; }";
      description = "Named prefix sets, each defined once in bird.conf as `<NAME>_NET_v4`/`<NAME>_NET_v6`.";
    };
  }
  {
    # Network-wide, not per host: anycast is a property of a prefix at every
    # site that announces it (and names only it, not the site's other
    # prefixes), and one host's options cannot see the others' announcements.
    key = "anycast";
    option = null;
    type = "record";
    model = "Announce";
    modelDoc = "Static prefixes a host originates into iBGP.";
    fields = families {
      token = "prefix";
      plan = {
        ipv4 = "IPv4 prefixes, e.g. \"104.16.0.0/13\".";
        ipv6 = "IPv6 prefixes, e.g. \"2606:4700::/32\".";
      };
    };
    default = { };
    description = "Prefixes more than one client announces on purpose, each site serving them itself (anycast). Any other prefix two clients announce, or one inside another client's, is refused: DN42's replies would reach only one of them.";
  }
]

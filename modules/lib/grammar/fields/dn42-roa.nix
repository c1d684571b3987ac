# The DN42 ROA fields of the table (../fields.nix): [hosts.<h>.dn42_roa] /
# services.ibgpTunnel.dn42.roa.<option> (optionPath). A field with key null
# is an option only (the plan has no say: the files' places). The plan leaves
# a URL or the interval out for DN42's (optionView: the option's default).
let
  dn42Defaults = import ../../base/dn42-defaults.nix;
  url = family: {
    key = "${family}_url";
    option = "${family}Url";
    type = "str";
    token = "dn42.url";
    nullable = true;
    optionView = {
      nullable = false;
      default = dn42Defaults."roa_url_${family}";
      description = "Where the ${family} ROA file for BIRD 2+ is downloaded from (DN42 wiki, howto/Bird2).";
    };
  };
  file = family: {
    key = null;
    option = "${family}File";
    type = "str";
    token = "runtimePath";
    default = dn42Defaults."roaFile${if family == "ipv4" then "Ipv4" else "Ipv6"}";
    description = "The last good ${family} ROA file, included by bird.conf.";
  };
in
map (f: { optionPath = [ "dn42" "roa" ]; roles = [ "reflector" ]; } // f) [
  {
    key = "enable";
    option = "enable";
    type = "bool";
    default = true;
    description = "Import only ROA-valid routes from DN42.";
    optionView.description = "Import from DN42 peers only ROA-valid routes, from ROA files a systemd timer keeps current.";
  }
  (url "ipv4" // { description = "IPv4 ROA file for BIRD 2+ (default: the one DN42's wiki documents)."; })
  (url "ipv6" // { description = "IPv6 ROA file for BIRD 2+."; })
  {
    key = "allow_insecure_urls";
    option = "allowInsecureUrls";
    type = "bool";
    default = false;
    description = "Let ipv4_url/ipv6_url be plain http:// (anyone on the path could rewrite them); https:// and file:// need no opt-in.";
    optionView.description = "Fetch the ROA files from plain http:// URLs too. Off: anyone on the path could rewrite a file over http://, and the ROA files decide which DN42 routes are imported; https:// and file:// (a local file) are always fetched.";
  }
  (file "ipv4")
  (file "ipv6")
  {
    key = "interval";
    option = "interval";
    type = "str";
    token = "dn42.interval";
    nullable = true;
    description = "Refresh interval, a systemd time span such as \"15min\".";
    optionView = {
      nullable = false;
      default = dn42Defaults.roa_interval;
      description = "How often the ROA files are refreshed (a systemd time span).";
    };
  }
]

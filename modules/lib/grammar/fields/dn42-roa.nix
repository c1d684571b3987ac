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
    key = "source";
    option = "source";
    type = "enum";
    values = [ "files" "rtr" ];
    default = "files";
    example = "rtr";
    description = "Where BIRD gets the ROAs: \"files\" (the ROA files, included by bird.conf) or \"rtr\" (RPKI over RTR: a local stayrtr fed with DN42's ROA JSON, and the rtr_caches in order).";
    optionView.description = "Where BIRD's ROA tables come from: \"files\", the ROA files a timer refreshes (reloaded with birdc configure), or \"rtr\", RPKI over RTR: a timer keeps DN42's ROA JSON (jsonUrl) as the last good file, a local stayrtr serves it, and one `protocol rpki` per cache of rtrCaches fills the tables; when every cache is gone BIRD keeps the last table for 48 hours (no mass withdrawal).";
  }
  {
    key = "json_url";
    option = "jsonUrl";
    type = "str";
    token = "dn42.url";
    nullable = true;
    description = "DN42's ROA JSON the local RTR cache serves (source = \"rtr\"; default: the one DN42's wiki documents).";
    optionView = {
      nullable = false;
      default = dn42Defaults.roa_json_url;
      description = "Where DN42's ROA JSON (the format RTR caches read) is downloaded from, with source = \"rtr\": https:// or file://, plain http:// only with allowInsecureUrls.";
    };
  }
  {
    key = null;
    option = "jsonFile";
    type = "str";
    token = "runtimePath";
    default = "${dn42Defaults.roa_dir}/${dn42Defaults.roa_file_json}";
    description = "The last good ROA JSON, served by the local stayrtr (source = \"rtr\").";
  }
  {
    key = "rtr_port";
    option = "rtrPort";
    type = "int";
    token = "dn42.rtrListenPort";
    default = dn42Defaults.rtr_port;
    description = "TCP port the local stayrtr listens on (on ${dn42Defaults.rtr_local_address} only), with source = \"rtr\".";
  }
  {
    key = "rtr_caches";
    option = "rtrCaches";
    type = "recordList";
    model = "RtrCache";
    modelDoc = "An RTR cache BIRD's `protocol rpki` asks for DN42's ROAs.";
    fields = [
      {
        key = "address";
        option = "address";
        type = "str";
        token = "address";
        example = "127.0.0.1";
        description = "The cache's IP address (an address, not a DNS name: BIRD resolves a name only once, at start).";
      }
      {
        key = "port";
        option = "port";
        type = "int";
        token = "dn42.rtrPort";
        example = 8282;
        description = "The cache's TCP port.";
      }
    ];
    default = [ ];
    example = [
      { address = "127.0.0.1"; port = 8282; }
      { address = "fd42:4242:2601::53"; port = 8282; }
    ];
    description = "RTR caches BIRD asks, in this order (the first preferred, the next ones as fallback); empty: the local stayrtr (127.0.0.1, rtr_port) alone. List the local one too when giving others.";
    optionView.description = "RTR caches BIRD asks with source = \"rtr\", one `protocol rpki` each, in this order: the first one's ROAs are preferred, the others keep the tables filled while it is gone. Empty: the local stayrtr alone (${dn42Defaults.rtr_local_address}, rtrPort).";
  }
  {
    key = "interval";
    option = "interval";
    type = "str";
    token = "dn42.interval";
    nullable = true;
    description = "Refresh interval, a systemd time span such as \"15min\" (with source = \"rtr\": of the JSON, of the local stayrtr and of BIRD's RTR sessions).";
    optionView = {
      nullable = false;
      default = dn42Defaults.roa_interval;
      description = "How often the ROA files are refreshed (a systemd time span).";
    };
  }
]

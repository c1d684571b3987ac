# The self-service DN42 peering field of the table (../fields.nix): one host
# record, [hosts.<h>.autopeer] / services.ibgpTunnel.autopeer (issue 24).
# A DN42 operator proves with a signature that they maintain an ASN and gets
# a tunnel and a session at runtime, rendered by the core as a static DN42
# peer would be (render/autopeer.nix). Where its state lives:
# base/defaults.toml [autopeer].
let
  int = low: high: expect: { type = "int"; inherit low high expect; };
in
{
  key = "autopeer";
  option = "autopeer";
  specOptional = true;
  type = "record";
  model = "Autopeer";
  modelDoc = "Self-service DN42 peering: requests signed by an ASN's maintainer (DN42 registry) become DN42 peers at runtime.";
  fields = [
    {
      key = "enable";
      option = "enable";
      type = "bool";
      default = false;
      description = "Run the self-service peering service: a web API takes signed requests, a privileged unit applies them (WireGuard interface, BIRD include, nft set elements).";
    }
    {
      key = "listen_address";
      option = "listenAddress";
      type = "str";
      token = "address";
      default = "127.0.0.1";
      description = "Where the web API listens (HTTP; put the host's reverse proxy with TLS in front).";
    }
    {
      key = "listen_port";
      option = "listenPort";
      type = "int";
      token = "port";
      default = 8042;
      description = "The web API's TCP port.";
    }
    {
      key = "registry_url";
      option = "registryUrl";
      type = "str";
      token = "dn42.gitUrl";
      default = "https://git.dn42.dev/dn42/registry.git";
      description = "The DN42 registry's git repository (https:// or file://): who maintains an ASN and their `auth:` keys.";
    }
    {
      key = "registry_refresh";
      option = "registryRefresh";
      type = "str";
      token = "dn42.interval";
      default = "1h";
      description = "How often the registry checkout is refreshed (a systemd time span with one unit).";
    }
    ({ key = "max_peers"; option = "maxPeers"; default = 32; description = "Most autopeered sessions on this host in total."; } // int 1 1000 "a number of autopeered sessions")
    ({ key = "max_per_asn"; option = "maxPerAsn"; default = 1; description = "Most autopeered sessions per ASN (more than one: each name gets an index)."; } // int 1 16 "a number of sessions per ASN")
    ({ key = "rate_limit"; option = "rateLimit"; default = 10; description = "Most requests per minute from one client address (and per ASN)."; } // int 1 10000 "a number of requests per minute")
    {
      key = "port_min";
      option = "portMin";
      type = "int";
      token = "port";
      default = 20000;
      description = "Lowest UDP port an autopeer tunnel listens on. A peer gets DN42's convention, 20000 + its ASN mod 10000, when that is in range and free, else the first free port.";
    }
    {
      key = "port_max";
      option = "portMax";
      type = "int";
      token = "port";
      default = 29999;
      description = "Highest UDP port an autopeer tunnel listens on.";
    }
    {
      key = "link_local";
      option = "linkLocal";
      type = "str";
      token = "dn42.linkLocalCidr";
      nullable = true;
      example = "fe80::38/64";
      description = "Our link-local IPv6 address with /64 on every autopeer tunnel (required when enabled); the requester gives theirs.";
    }
    {
      key = "ipv4";
      option = "ipv4";
      type = "str";
      token = "ipv4";
      nullable = true;
      example = "172.23.101.1";
      description = "Our DN42 IPv4 address on every autopeer tunnel (a /32, point-to-point with the requester's peer_ipv4). Unset: requests may not ask for IPv4 on the tunnel.";
    }
    ({ key = "challenge_ttl"; option = "challengeTtl"; default = 300; description = "Seconds a challenge stays valid (single use)."; } // int 30 3600 "a challenge lifetime in seconds")
    {
      key = "export_sets";
      option = "exportSets";
      type = "strList";
      token = "name";
      default = [ ];
      example = [ "own" ];
      description = "Names of prefix sets whose static announcements every autopeer is sent (as a static DN42 peer's export_sets). Empty: export nothing.";
    }
  ];
  default = { };
  roles = [ "reflector" ];
  example = { enable = true; link_local = "fe80::38/64"; export_sets = [ "own" ]; };
  description = "Reflector with DN42: self-service DN42 peering. A DN42 operator signs a one-time challenge with a key of their ASN's maintainer (DN42 registry) and gets a WireGuard tunnel and an eBGP session at runtime, rendered and checked as a static DN42 peer; static peers always win a collision.";
}

# DN42 defaults plus the paths and secret names derived from them.
let
  raw = builtins.fromTOML (builtins.readFile ./dn42-defaults.toml);
  base = import ./defaults.nix;
in
raw
// {
  roaFileIpv4 = "${raw.roa_dir}/${raw.roa_file_ipv4}";
  roaFileIpv6 = "${raw.roa_dir}/${raw.roa_file_ipv6}";
  privateKeyFile = "${base.secrets_dir}/${raw.secret_private_key}";
  pskSecretName = peer: "${raw.secret_psk_prefix}${peer}";
  pskFile = peer: "${base.secrets_dir}/${raw.secret_psk_prefix}${peer}";
  # latency = "auto": the file holding a peer's measured class.
  latencyFile = peer: "${raw.latency_dir}/${peer}.conf";
  # DN42's convention: 2 followed by the last four digits of the peer's ASN.
  listenPort = asn: 20000 + asn - (asn / 10000) * 10000;
  # A spec's dn42.roa, defaults filled in (hostFromPlan and the spec's
  # normalisation both start from it).
  roaFields = {
    enable = true;
    ipv4Url = raw.roa_url_ipv4;
    ipv6Url = raw.roa_url_ipv6;
    allowInsecureUrls = false;
    ipv4File = "${raw.roa_dir}/${raw.roa_file_ipv4}";
    ipv6File = "${raw.roa_dir}/${raw.roa_file_ipv6}";
    interval = raw.roa_interval;
    source = "files";
    jsonUrl = raw.roa_json_url;
    jsonFile = "${raw.roa_dir}/${raw.roa_file_json}";
    rtrPort = raw.rtr_port;
    rtrCaches = [ ];
  };
}

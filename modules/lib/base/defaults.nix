# The shared constants (also read by the Python helper), plus the sops-nix
# paths derived from them.
let
  raw = builtins.fromTOML (builtins.readFile ./defaults.toml);
in
raw
// {
  privateKeyFile = "${raw.secrets_dir}/${raw.secret_private_key}";
  pskSecretName = link: "${raw.secret_psk_prefix}${link}";
  pskFile = link: "${raw.secrets_dir}/${raw.secret_psk_prefix}${link}";
  # The tuning keys as option names (camelCase).
  tuning = (import ./util.nix).camelCaseAttrs raw.tuning;
}

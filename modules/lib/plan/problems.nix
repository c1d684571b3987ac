# plan (builtins.fromTOML of hosts/plan.toml) -> [ { path; severity; message; } ]:
# every network rule a plan must follow beyond its shape, with TOML paths
# (links.pve.client_ipv4, prefix_sets.cf.ipv4[0]). `ibgp-tunnel check` asks
# for this after its shape layer (JSON Schema + pydantic); the NixOS module
# asserts it when services.ibgpTunnel.plan is set. A value that does not
# parse is reported once, by the rule that owns it; other rules skip it.
let
  inherit (builtins) attrNames concatMap head;
  inherit (import ./rules/common.nix) error warning tokenError valid t defaults util checks mapHosts linkOf withFacts;
  network = import ./rules/network.nix;
  links = import ./rules/links.nix;
  announce = import ./rules/announce.nix;
  inherit (import ./rules/dn42-peers.nix) dn42PeerRules;
  inherit (import ./rules/tuning.nix) tuningRules;
  inherit (network) asnRules nameRules prefixSetRules setReferenceRules routerIdRules publicKeyRules roleRules inboundRules interfaceNameRules;
  inherit (links) linkEndRules linkSubnetRules linkAddressRules hostLinkRules linkPortRules linkFieldRules;
  inherit (announce) announceRules overlapRules anycastRules misrouteRules;

  # Two or more reflectors (issue #13): cluster ids, preferences, endpoints.
  reflectorRules = import ./rules/reflectors.nix {
    inherit error warning tokenError valid t defaults util checks;
  };

  # DN42 tunnels, communities and ROA (./rules/dn42.nix, ./rules/dn42-peers.nix).
  dn42Rules = import ./rules/dn42.nix { inherit error warning tokenError mapHosts linkOf; };
  # DN42's route collector session (./rules/dn42-collector.nix).
  dn42CollectorRules = import ./rules/dn42-collector.nix;
  # Self-service DN42 peering's settings (./rules/autopeer.nix).
  autopeerRules = import ./rules/autopeer.nix;

  rules = [
    asnRules
    nameRules
    prefixSetRules
    setReferenceRules
    routerIdRules
    publicKeyRules
    roleRules
    announceRules
    inboundRules
    anycastRules
    interfaceNameRules
    dn42PeerRules
    dn42Rules
    dn42CollectorRules
    autopeerRules
    linkEndRules
    linkSubnetRules
    linkAddressRules
    hostLinkRules
    linkPortRules
    linkFieldRules
    overlapRules
    misrouteRules
    tuningRules
    reflectorRules
  ];
in
given:
let
  plan = withFacts given;
  found = concatMap (rule: rule plan) rules;
  # Two rules may say the same thing the same way: say it once.
  distinct = builtins.groupBy (f: "${f.severity}\n${f.path}\n${f.message}") found;
in
map (key: head distinct.${key}) (attrNames distinct)
# The names the fixed DN42 BIRD logic (../resources/*.conf) and its ROA file
# protocols define, unprefixed: a peer's session dn42_<peer> must be none of
# them (checks.nix), and the renderer names the protocols.
let
  inherit (builtins) readFile;
in
rec {
  # The names bird.conf defines for DN42 besides the sessions, unprefixed:
  # what the resources define (tables, functions) and the ROA file protocols
  # below. A peer's session dn42_<peer> must be none of them.
  resourceSymbols =
    file:
    builtins.concatMap (m: if builtins.isList m then [ (builtins.elemAt m 1) ] else [ ]) (
      builtins.split "(function|table) (dn42_[A-Za-z0-9_]+)" (readFile file)
    );
  fileProtocols = [ "dn42_roa4_file" "dn42_roa6_file" ];
  # One `protocol rpki` per RTR cache, numbered in the plan's order; at most
  # maxRtrCaches of them (a plan rule), so every name is known here.
  maxRtrCaches = 8;
  rpkiProtocol = n: "dn42_rpki_${toString n}";
  rpkiProtocols = builtins.genList (i: rpkiProtocol (i + 1)) maxRtrCaches;
  ownSymbols =
    resourceSymbols ../resources/dn42-roa.conf
    ++ resourceSymbols ../resources/dn42-communities.conf
    ++ fileProtocols
    ++ rpkiProtocols;

}

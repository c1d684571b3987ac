# An int kind that also takes these words (dn42Peer latency's "auto"): low and
# high stay the numbers' (fields.json, the options), `also` names the words.
# tokens.nix's orWords; `show` is its value printer.
show: words: k:
k
// rec {
  also = words;
  expect = "${k.expect}, or ${builtins.concatStringsSep ", " (map show words)}";
  problem =
    value:
    if builtins.elem value words then
      null
    else if builtins.isString value then
      "${show value} is not ${expect}"
    else
      k.problem value;
  emit =
    field: value:
    let
      p = problem value;
    in
    if p == null then value else throw "ibgp-tunnel: ${field}: ${p}";
}

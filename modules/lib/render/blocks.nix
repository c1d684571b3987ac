# A tiny layout language for brace-structured configs (bird.conf, nft):
# a line is a string, a block is { head; body; end ? "}"; }, and lists
# nest. Rendering indents each block's body by two spaces, so generators
# never hand-indent interpolated text.
let
  inherit (builtins) concatStringsSep concatMap isAttrs isList;

  padOf = depth: concatStringsSep "" (builtins.genList (_: "  ") depth);
  # Indents for the usual depths, built once (every line asks for one).
  pads = builtins.genList padOf 16;

  linesOf =
    depth: item:
    let
      pad = if depth < 16 then builtins.elemAt pads depth else padOf depth;
    in
    if isList item then
      concatMap (linesOf depth) item
    else if isAttrs item then
      [ "${pad}${item.head} {" ] ++ concatMap (linesOf (depth + 1)) item.body ++ [ "${pad}${item.end or "}"}" ]
    else if item == "" then
      [ "" ]
    else
      [ "${pad}${item}" ];
in
{
  block = head: body: { inherit head body; };
  # BIRD closes channel and filter blocks with "};".
  blockSemi = head: body: {
    inherit head body;
    end = "};";
  };
  render = items: concatStringsSep "\n" (linesOf 0 items) + "\n";
}

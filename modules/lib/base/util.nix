# Small list/attrset/string helpers on builtins only, so the core evaluates
# with plain nix-instantiate and no nixpkgs.
let
  inherit (builtins)
    attrNames
    concatStringsSep
    filter
    foldl'
    genList
    head
    length
    listToAttrs
    replaceStrings
    stringLength
    substring
    ;

  lowerChars = [ "a" "b" "c" "d" "e" "f" "g" "h" "i" "j" "k" "l" "m" "n" "o" "p" "q" "r" "s" "t" "u" "v" "w" "x" "y" "z" ];
  powers = foldl' (acc: _: acc ++ [ (builtins.elemAt acc (length acc - 1) * 2) ]) [ 1 ] (genList (i: i) 62);

  upperChars = [ "A" "B" "C" "D" "E" "F" "G" "H" "I" "J" "K" "L" "M" "N" "O" "P" "Q" "R" "S" "T" "U" "V" "W" "X" "Y" "Z" ];
in
rec {
  toUpper = replaceStrings lowerChars upperChars;
  toLower = replaceStrings upperChars lowerChars;

  filterAttrs = pred: set: listToAttrs (map (name: { inherit name; value = set.${name}; }) (filter (name: pred name set.${name}) (attrNames set)));

  mapAttrsToList = f: set: map (name: f name set.${name}) (attrNames set);

  # Each string once, first occurrence first. Through an attrset of each
  # string's first index (listToAttrs keeps the first of equal names), so
  # n log n: a reflector's list grows with its clients.
  uniqueStrings =
    list:
    let
      at = genList (i: { name = builtins.elemAt list i; value = i; }) (length list);
      first = listToAttrs at;
    in
    map (x: x.name) (filter (x: first.${x.name} == x.value) at);

  optional = cond: value: if cond then [ value ] else [ ];

  optionalString = cond: text: if cond then text else "";

  hasPrefix = prefix: text: substring 0 (stringLength prefix) text == prefix;

  # 2^n for 0 <= n <= 62, from a table built once (address arithmetic calls
  # this for every bit).
  pow2 = n: builtins.elemAt powers n;

  lines = text: filter builtins.isString (builtins.split "\n" text);

  quote = s: "\"${s}\"";

  firstOr = fallback: list: if list == [ ] then fallback else head list;

  # "bfd_interval_ms" -> "bfdIntervalMs": TOML keys are snake_case, options camelCase.
  camelCase =
    name:
    let
      words = filter builtins.isString (builtins.split "_" name);
      capitalize = word: toUpper (substring 0 1 word) + substring 1 (stringLength word) word;
    in
    concatStringsSep "" ([ (head words) ] ++ map capitalize (builtins.tail words));

  # "keepaliveTime" -> "keepalive_time": option names back to TOML keys.
  snakeCase = replaceStrings upperChars (map (c: "_" + c) lowerChars);

  camelCaseAttrs = set: listToAttrs (map (name: { name = camelCase name; value = set.${name}; }) (attrNames set));
}

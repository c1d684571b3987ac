# A script of ../resources as a unit installs it: run from the tree, a script
# sources the shared shell functions beside it (one `. "$(dirname ...)/<file>"`
# line each); a store path has nothing beside it, so their text takes that
# line's place here. A script without the line it should have is an error
# rather than a unit that fails at its first run.
let
  inherit (builtins) attrNames filter head readFile replaceStrings;
  scripts = {
    "dn42-roa-update.sh" = ../resources/dn42-roa-update.sh;
    "dn42-latency-update.sh" = ../resources/dn42-latency-update.sh;
    "dn42-rtr-update.sh" = ../resources/dn42-rtr-update.sh;
  };
  shared = {
    "bird-config-loads.sh" = ../resources/bird-config-loads.sh;
  };
  line = file: ''. "$(dirname "''${BASH_SOURCE[0]}")/${file}" || exit 1'' + "\n";
in
name: uses:
let
  text = readFile scripts.${name};
  sources = file: shared ? ${file} && replaceStrings [ (line file) ] [ "" ] text != text;
  missing = filter (file: !(sources file)) uses;
in
if !(scripts ? ${name}) then
  throw "ibgp-tunnel: resources/${name} is not a script (${toString (attrNames scripts)})"
else if missing != [ ] then
  throw "ibgp-tunnel: resources/${name} does not source ${head missing}"
else
  replaceStrings (map line uses) (map (file: readFile shared.${file}) uses) text

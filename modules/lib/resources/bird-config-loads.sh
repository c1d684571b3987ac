# config_loads FILE REPLACEMENT...: does the real bird.conf load with the
# includes of these files pointed at these replacements (pairs "file
# replacement")? BIRD ($bird -p) parses a copy of $conf in $work, its relative
# includes made absolute (BIRD reads them relative to the including file),
# every other include untouched; its complaint goes to stderr. Shared by dn42-roa-update.sh and dn42-latency-update.sh, which
# define $conf, $bird and $work (their scratch directory): run from the tree
# they source this file; the core puts its text in place of that line when it
# hands a script to a unit (a store path has nothing beside it).
config_loads() {
  local map=$work/map copy=$work/bird.conf out
  : >"$map"
  while [ $# -ge 2 ]; do
    printf '%s\t%s\n' "$1" "$2" >>"$map"
    shift 2
  done
  awk -v dir="$(dirname "$conf")" '
    FILENAME == ARGV[1] { split($0, p, "\t"); to[p[1]] = p[2]; seen[p[1]] = 0; next }
    /^[ \t]*include[ \t]*"[^"]*"[ \t]*;[ \t]*$/ {
      path = $0
      sub(/^[ \t]*include[ \t]*"/, "", path)
      sub(/"[ \t]*;[ \t]*$/, "", path)
      if (path in to) { print "include \"" to[path] "\";"; seen[path]++; next }
      if (substr(path, 1, 1) != "/") { print "include \"" dir "/" path "\";"; next }
    }
    { print }
    END { for (f in seen) if (!seen[f]) { print "it does not include " f > "/dev/stderr"; exit 1 } }
  ' "$map" "$conf" >"$copy" || return 1
  if ! out=$("$bird" -p -c "$copy" 2>&1); then
    echo "$out" >&2
    return 1
  fi
}

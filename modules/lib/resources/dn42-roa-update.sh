# Refresh DN42's ROA files for BIRD; run by ibgp-tunnel's ROA timer (and by the
# lab). Arguments: [--allow-http] then quadruples "family url file table":
# family ipv4 or ipv6, the table the file's `protocol static` fills (the name
# bird.conf gives it, prefixed in a merged config).
# Environment: BIRD, BIRDC (commands; default bird, birdc), BIRDC_SOCKET
# (optional control socket), BIRD_CONF (the config BIRD runs; default
# /etc/bird/bird.conf, NixOS's), ROA_MAX_BYTES (largest file accepted, default
# 8388608 = 8 MiB, dn42-defaults.toml's roa_max_bytes; DN42's files are a few
# hundred KiB).
#
# A downloaded file is data, never config: bird.conf includes it inside a
# `protocol static`, and an include is textual, so a file that closed the
# block could add protocols, routes or functions. A file is installed only when
#   1. every line is a comment, blank, or `route <prefix> max <len> as <asn>;`
#      of the file's family (roa_entries below), with at least one entry;
#   2. BIRD parses the real bird.conf with the file in place (a copy whose
#      include points to the download);
# then it replaces the installed one by rename (BIRD never reads half a file)
# and BIRD is reconfigured once; if BIRD refuses, the previous files come back.
# An installed file that fails step 1 (written before these checks) is replaced
# by an empty one: no ROA means every DN42 route is refused, never injected.
# Exit status: 0 when every file is current and loaded, 1 otherwise (BIRD keeps
# running on the last good data).
set -u
export LC_ALL=C

bird=${BIRD:-bird}
birdc=${BIRDC:-birdc}
conf=${BIRD_CONF:-/etc/bird/bird.conf}
max_bytes=${ROA_MAX_BYTES:-8388608}
case $max_bytes in
  '' | *[!0-9]*)
    echo "dn42-roa: ROA_MAX_BYTES must be a number of bytes, not '$max_bytes'" >&2
    exit 2
    ;;
esac
failed=0
socket_args=()
if [ -n "${BIRDC_SOCKET:-}" ]; then socket_args=(-s "$BIRDC_SOCKET"); fi

allow_http=0
if [ "${1:-}" = --allow-http ]; then
  allow_http=1
  shift
fi
if [ $# -eq 0 ] || [ $(($# % 4)) -ne 0 ]; then
  echo "dn42-roa: usage: $0 [--allow-http] (ipv4|ipv6 URL FILE TABLE)..." >&2
  exit 2
fi

work=$(mktemp -d) || exit 1
trap 'rm -rf "$work"' EXIT
: >"$work/empty.conf"

warn() { echo "dn42-roa: $*" >&2; }

# The ROA grammar: prints the number of entries, or names the first bad line
# on stderr and fails. Byte-wise (LC_ALL=C), whole lines only; NUL bytes are
# refused before (awk implementations differ on them).
roa_entries() {
  local family=$1 file=$2
  if [ "$(tr -d '\000' <"$file" | wc -c)" -ne "$(wc -c <"$file")" ]; then
    echo "holds a NUL byte" >&2
    return 1
  fi
  awk -v family="$family" '
    function fail(why) { printf "line %d: %s\n", NR, why > "/dev/stderr"; bad = 1; exit 1 }
    function decimal(s, most) { return s ~ /^(0|[1-9][0-9]*)$/ && length(s) <= most }
    # One IPv6 group: 1-4 hex digits, as a number.
    function group(s,   i, v) {
      if (s !~ /^[0-9A-Fa-f]+$/ || length(s) > 4) return -1
      v = 0
      for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", tolower(substr(s, i, 1))) - 1
      return v
    }
    # The address as 4 (IPv4) or 8 (IPv6) numbers in w[1..]; 0 when malformed.
    # Bits set past the prefix length: BIRD refuses them (step 2).
    function ipv4(s, w,   n, i) {
      if (s !~ /^[0-9.]+$/) return 0
      n = split(s, w, ".")
      if (n != 4) return 0
      for (i = 1; i <= 4; i++) if (!decimal(w[i], 3) || w[i] + 0 > 255) return 0
      return 1
    }
    function ipv6(s, w,   halves, head, tail, nh, nt, h, t, i) {
      if (s !~ /^[0-9A-Fa-f:]+$/ || s ~ /:::/) return 0
      nh = split(s, halves, "::")
      if (nh > 2) return 0
      nh = halves[1] == "" ? 0 : split(halves[1], h, ":")
      nt = 0
      if (s ~ /::/) {
        nt = halves[2] == "" ? 0 : split(halves[2], t, ":")
        if (nh + nt > 7) return 0
      } else if (nh != 8) return 0
      for (i = 1; i <= 8; i++) w[i] = 0
      for (i = 1; i <= nh; i++) if ((w[i] = group(h[i])) < 0) return 0
      for (i = 1; i <= nt; i++) if ((w[8 - nt + i] = group(t[i])) < 0) return 0
      return 1
    }
    length($0) > 256 { fail("is longer than 256 bytes") }
    /^[ \t]*$/ { next }
    /^[ \t]*#[ -~\t]*$/ { next }
    {
      if ($0 !~ /^[ \t]*route[ \t]+[0-9A-Fa-f.:]+\/[0-9]+[ \t]+max[ \t]+[0-9]+[ \t]+as[ \t]+[0-9]+[ \t]*;[ \t]*$/)
        fail("is not `route <prefix> max <length> as <asn>;`, a # comment or blank")
      line = $0
      sub(/;[ \t]*$/, "", line)
      split(line, f, /[ \t]+/)
      if (f[1] == "") { for (i = 1; i < 7; i++) f[i] = f[i + 1] }
      split(f[2], p, "/")
      bits = family == "ipv4" ? 32 : 128
      if (family == "ipv4" ? !ipv4(p[1], w) : !ipv6(p[1], w))
        fail(p[1] " is not an " family " address")
      if (!decimal(p[2], 3) || p[2] + 0 > bits) fail("/" p[2] " is not an " family " prefix length")
      if (!decimal(f[4], 3) || f[4] + 0 < p[2] + 0 || f[4] + 0 > bits)
        fail("max " f[4] " is not between the prefix length " p[2] " and " bits)
      if (!decimal(f[6], 10) || f[6] + 0 > 4294967295) fail("as " f[6] " is not a 32-bit AS number")
      entries++
    }
    END {
      if (bad) exit 1
      if (entries == 0) { print "holds no ROA entry" > "/dev/stderr"; exit 1 }
      print entries
    }
  ' "$file"
}

# config_loads (shared with the other scripts that change what bird.conf
# includes): from the tree it is read beside this file; the core's copy has it
# in place of the next line (modules/lib/render/resource-script.nix).
. "$(dirname "${BASH_SOURCE[0]}")/bird-config-loads.sh" || exit 1

url_allowed() {
  case $1 in
    https://* | file:///*) return 0 ;;
    http://*) [ "$allow_http" = 1 ] ;;
    *) return 1 ;;
  esac
}

# Download, size and grammar (step 1): the candidate in $dir, or nothing.
fetch() {
  local family=$1 url=$2 tmp=$3 protocols=https,file redirects=https size why
  if [ "$allow_http" = 1 ]; then protocols=https,http,file redirects=https,http; fi
  # At most max_bytes: curl refuses a larger size the server announces
  # (--max-filesize, exit 63); head keeps one byte past the cap whatever the
  # server says (curl before 8.4 ignores the cap when no size is announced, and
  # for file:// URLs), so a larger download is seen without filling the disk.
  curl --fail --silent --show-error --location --proto "=$protocols" --proto-redir "=$redirects" \
    --max-filesize "$max_bytes" --max-time 120 "$url" | head -c "$((max_bytes + 1))" >"$tmp"
  local statuses=("${PIPESTATUS[@]}")
  size=$(wc -c <"$tmp")
  if [ "${statuses[0]}" = 63 ] || [ "$size" -gt "$max_bytes" ]; then
    warn "$url is larger than $max_bytes bytes (ROA_MAX_BYTES)"
    return 1
  fi
  if [ "${statuses[0]}" != 0 ] || [ "${statuses[1]}" != 0 ]; then
    warn "downloading $url failed"
    return 1
  fi
  if ! why=$(roa_entries "$family" "$tmp" 2>&1 >/dev/null); then
    warn "$url is not a BIRD $family ROA file: $why"
    return 1
  fi
}

files=() families=() tables=() candidates=()
n=0
while [ $# -ge 4 ]; do
  family=$1 url=$2 file=$3 table=$4
  shift 4
  files[n]=$file families[n]=$family tables[n]=$table candidates[n]=""
  case $family in
    ipv4 | ipv6) ;;
    *) warn "$family is not ipv4 or ipv6; keeping $file"; failed=1; n=$((n + 1)); continue ;;
  esac
  dir=$(dirname "$file")
  mkdir -p "$dir"
  if ! url_allowed "$url"; then
    warn "$url: only https:// and file:// URLs are fetched (http:// needs allowInsecureUrls); keeping $file"
    failed=1
  elif tmp=$(mktemp "$dir/.roa-new.XXXXXX"); then
    if fetch "$family" "$url" "$tmp"; then
      candidates[n]=$tmp
    else
      rm -f "$tmp"
      warn "keeping $file"
      failed=1
    fi
  else
    failed=1
  fi
  # What stays installed must pass the grammar too: a file an older script
  # installed, or a missing one, becomes empty.
  if [ -z "${candidates[n]}" ] && { [ ! -f "$file" ] || ! roa_entries "$family" "$file" >/dev/null 2>&1; }; then
    if [ -s "$file" ]; then
      warn "the installed $file is not a BIRD $family ROA file: replacing it by an empty one (DN42 routes are refused until a good download)"
    fi
    [ -f "$file" ] && [ ! -s "$file" ] || candidates[n]=empty
    failed=1
  fi
  n=$((n + 1))
done

# Step 2, one candidate at a time on top of those accepted before it.
accepted=() # pairs: file, replacement
for ((i = 0; i < n; i++)); do
  [ "${candidates[i]}" = empty ] && accepted+=("${files[i]}" "$work/empty.conf")
done
for ((i = 0; i < n; i++)); do
  cand=${candidates[i]}
  [ -n "$cand" ] && [ "$cand" != empty ] || continue
  if why=$(config_loads "${accepted[@]}" "${files[i]}" "$cand" 2>&1); then
    accepted+=("${files[i]}" "$cand")
  else
    warn "${files[i]}: $conf would not load with the download: $why; keeping the installed file"
    rm -f "$cand"
    candidates[i]=""
    failed=1
  fi
done
if ! why=$(config_loads "${accepted[@]}" 2>&1); then
  warn "$conf does not load with the ROA files it would have: $why; nothing installed"
  exit 1
fi

# The entries of a (checked) ROA file as sorted "prefix asn" pairs.
roa_pairs() {
  [ -f "$1" ] || return 0
  sed -n 's|^[ \t]*route[ \t][ \t]*\([0-9A-Fa-f.:/]*\)[ \t][ \t]*max[ \t][ \t]*[0-9]*[ \t][ \t]*as[ \t][ \t]*\([0-9]*\)[ \t]*;.*|\1 \2|p' "$1" | sort -u
}

# What BIRD's roa_check must answer once it judges by the new file: `birdc eval`
# expressions, each TRUE then, a few checks joined by && per line. An added entry
# makes its prefix valid for its AS; a removed one leaves its prefix not valid for
# its AS when the new file has no entry of that AS (one that has might still
# cover it: not checked). A count alone cannot tell a refresh that replaces
# entries (the same prefix, another AS) from the old table. At most 64 checks
# per table: BIRD loads a file as a whole, a sample shows it did.
roa_checks() {
  local table=$1 old=$2 new=$3
  [[ $table =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || return 0
  roa_pairs "$old" >"$work/old.pairs"
  roa_pairs "$new" >"$work/new.pairs"
  {
    comm -13 "$work/old.pairs" "$work/new.pairs" | awk -v t="$table" '{ print "roa_check(" t ", " $1 ", " $2 ") = ROA_VALID" }'
    comm -23 "$work/old.pairs" "$work/new.pairs" | awk -v t="$table" '
      FILENAME == ARGV[1] { has[$2] = 1; next }
      !($2 in has) { print "roa_check(" t ", " $1 ", " $2 ") != ROA_VALID" }
    ' "$work/new.pairs" -
  } | head -n 64 | awk '{ line = line (n++ ? " && " : "") $0 } n == 16 { print line; line = ""; n = 0 } END { if (n) print line }'
}

# Install what changed: rename over the old file, which stays (hard link)
# until BIRD took the new one.
installed=() # indices
loaded=()    # triples: table, entries in its new file, its roa_checks
for ((i = 0; i < n; i++)); do
  cand=${candidates[i]} file=${files[i]}
  [ -n "$cand" ] || continue
  dir=$(dirname "$file") previous="$(dirname "$file")/.$(basename "$file").previous"
  if [ "$cand" = empty ]; then
    cand=$(mktemp "$dir/.roa-new.XXXXXX") || { failed=1; continue; }
  elif [ -f "$file" ] && cmp -s "$cand" "$file"; then
    rm -f "$cand"
    continue
  fi
  chmod 0644 "$cand"
  sync "$cand"
  rm -f "$previous"
  if [ -f "$file" ] && ! ln "$file" "$previous" 2>/dev/null && ! cp -p "$file" "$previous"; then
    warn "cannot keep $file to roll back to; not replacing it"
    rm -f "$cand"
    failed=1
    continue
  fi
  checks="$work/checks.$i"
  roa_checks "${tables[i]}" "$previous" "$cand" >"$checks"
  mv -f "$cand" "$file"
  sync "$dir"
  echo "dn42-roa: $file updated"
  installed+=("$i")
  loaded+=("${tables[i]}" "$(roa_entries "${families[i]}" "$file" 2>/dev/null || echo 0)" "$checks")
done

# Put the files BIRD ran with back (a file that was missing comes back empty).
roll_back() {
  local i file previous
  for i in "${installed[@]}"; do
    file=${files[i]}
    previous="$(dirname "$file")/.$(basename "$file").previous"
    if [ -f "$previous" ]; then mv -f "$previous" "$file"; else : >"$file"; fi
    echo "dn42-roa: $file rolled back" >&2
  done
}

forget_previous() {
  local i file
  for i in "${installed[@]}"; do
    file=${files[i]}
    rm -f "$(dirname "$file")/.$(basename "$file").previous"
  done
}

# BIRD may finish reconfiguring after `configure` returns (BIRD 3 applies it in
# other threads, and its roa_check reads an aggregate of the ROA table that
# follows it later still): wait until each changed table holds the file's
# entries and roa_check answers by the new ones, so the reload below judges
# routes by the new ROAs (docs/performance.md, "ROA refresh").
tables_loaded() {
  local i count expr
  for ((i = 0; i < ${#loaded[@]}; i += 3)); do
    count=$("$birdc" "${socket_args[@]}" show route table "${loaded[i]}" count 2>/dev/null |
      sed -n 's/^\([0-9][0-9]*\) of [0-9]* routes.*/\1/p')
    [ "${count:-0}" -eq "${loaded[i + 1]}" ] || return 1
    while IFS= read -r expr; do
      "$birdc" "${socket_args[@]}" eval "$expr" </dev/null 2>/dev/null | grep -qx TRUE || return 1
    done <"${loaded[i + 2]}"
  done
}

configured() {
  case $1 in
    *"Reconfigured"* | *"Reconfiguration in progress"* | *"Reconfiguration already in progress"*) return 0 ;;
    *) return 1 ;;
  esac
}

if [ ${#installed[@]} -gt 0 ]; then
  out=$("$birdc" "${socket_args[@]}" configure 2>&1)
  if configured "$out"; then
    forget_previous
    echo "dn42-roa: BIRD reconfigured"
    ready=0
    for _ in $(seq 100); do
      if tables_loaded; then ready=1 && break; fi
      sleep 0.1
    done
    [ "$ready" = 1 ] || warn "BIRD does not judge by the new ROA entries after 10 s; reloading anyway"
    # Routes already refused (or accepted) were judged by the old table: ask
    # the peers for them again (route refresh), so the new ROAs apply now.
    # BIRD 2 spells it `reload in all`, BIRD 3 `reload filters all`.
    if ! "$birdc" "${socket_args[@]}" reload in all >/dev/null 2>&1 &&
      ! "$birdc" "${socket_args[@]}" reload filters all >/dev/null 2>&1; then
      warn "birdc could not reload the sessions' imports"
      failed=1
    fi
  elif ! "$birdc" "${socket_args[@]}" show status >/dev/null 2>&1; then
    # BIRD is not running: it reads the checked files when it starts.
    forget_previous
    warn "BIRD does not answer (birdc configure: $out); it loads the new files when it starts"
    failed=1
  else
    warn "birdc configure failed: $out"
    roll_back
    out=$("$birdc" "${socket_args[@]}" configure 2>&1)
    configured "$out" || warn "birdc configure failed again after the rollback: $out"
    failed=1
  fi
fi
exit "$failed"

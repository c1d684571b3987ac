# Refresh DN42's ROA files for BIRD; run by ibgp-tunnel's ROA timer (and by the
# lab). Arguments: triples "family url file", family ipv4 or ipv6.
# Environment: BIRD, BIRDC (commands; default bird, birdc), BIRDC_SOCKET
# (optional control socket), ROA_MAX_BYTES (largest file accepted, default
# 8388608 = 8 MiB, dn42-defaults.toml's roa_max_bytes; DN42's files are a few
# hundred KiB).
#
# Per file: download to a temporary file beside it; keep the last good file
# when the download fails, is empty or does not parse as a BIRD ROA include;
# replace it (rename, so BIRD never reads half a file) only when the content
# changed. BIRD is reconfigured once, and only if a file changed; then the
# sessions' routes are re-imported under the new ROAs (birdc reload).
# Exit status: 0 when every file is current, 1 when one could not be refreshed
# (BIRD keeps running on the last good data either way).
set -u

bird=${BIRD:-bird}
birdc=${BIRDC:-birdc}
socket_args=()
if [ -n "${BIRDC_SOCKET:-}" ]; then socket_args=(-s "$BIRDC_SOCKET"); fi

max_bytes=${ROA_MAX_BYTES:-8388608}
case $max_bytes in
  '' | *[!0-9]*)
    echo "dn42-roa: ROA_MAX_BYTES must be a number of bytes, not '$max_bytes'" >&2
    exit 2
    ;;
esac

changed=0
failed=0
loaded=() # pairs: table name, entries in its new file

# Does FILE parse as the body of a `protocol static` with a FAMILY roa channel?
parses() {
  local family=$1 file=$2 dir check
  dir=$(dirname "$file")
  check=$(mktemp "$dir/.roa-check.XXXXXX") || return 1
  local table=roa${family#ipv}
  printf '%s table t;\nprotocol static {\n  %s { table t; };\n  include "%s";\n}\n' \
    "$table" "$table" "$file" >"$check"
  "$bird" -p -c "$check" >/dev/null 2>&1
  local status=$?
  rm -f "$check"
  return $status
}

while [ $# -ge 3 ]; do
  family=$1 url=$2 file=$3
  shift 3
  dir=$(dirname "$file")
  mkdir -p "$dir"
  tmp=$(mktemp "$dir/.roa-new.XXXXXX") || { failed=1; continue; }
  # At most max_bytes: curl refuses a larger size the server announces
  # (--max-filesize, exit 63); head keeps one byte past the cap whatever the
  # server says (curl before 8.4 ignores the cap when no size is announced),
  # so a larger download is seen without filling the disk.
  curl --fail --silent --show-error --location --max-time 120 --max-filesize "$max_bytes" "$url" |
    head -c "$((max_bytes + 1))" >"$tmp"
  statuses=("${PIPESTATUS[@]}")
  if [ "${statuses[0]}" = 63 ] || [ "$(wc -c <"$tmp")" -gt "$max_bytes" ]; then
    echo "dn42-roa: $url is larger than $max_bytes bytes (ROA_MAX_BYTES); keeping $file" >&2
    rm -f "$tmp"; failed=1; continue
  fi
  if [ "${statuses[0]}" != 0 ] || [ "${statuses[1]}" != 0 ]; then
    echo "dn42-roa: downloading $url failed; keeping $file" >&2
    rm -f "$tmp"; failed=1; continue
  fi
  if [ ! -s "$tmp" ] || ! parses "$family" "$tmp"; then
    echo "dn42-roa: $url is empty or not a BIRD $family ROA file; keeping $file" >&2
    rm -f "$tmp"; failed=1; continue
  fi
  if [ -f "$file" ] && cmp -s "$tmp" "$file"; then
    rm -f "$tmp"; continue
  fi
  chmod 0644 "$tmp"
  mv -f "$tmp" "$file"
  echo "dn42-roa: $file updated from $url"
  changed=1
  loaded+=("dn42_roa${family#ipv}" "$(grep -c '^[[:space:]]*route ' "$file")")
done

# BIRD may finish reconfiguring after `configure` returns (BIRD 3 fills
# tables in other threads): wait until each changed table holds the file's
# entries, so the reload below judges routes by the new ROAs.
tables_loaded() {
  local i count
  for ((i = 0; i < ${#loaded[@]}; i += 2)); do
    count=$("$birdc" "${socket_args[@]}" show route table "${loaded[i]}" count 2>/dev/null |
      sed -n 's/^\([0-9][0-9]*\) of [0-9]* routes.*/\1/p')
    [ "${count:-0}" -eq "${loaded[i + 1]}" ] || return 1
  done
}

if [ "$changed" = 1 ]; then
  out=$("$birdc" "${socket_args[@]}" configure 2>&1)
  case $out in
    *"Reconfigured"* | *"Reconfiguration in progress"* | *"Reconfiguration already in progress"*)
      echo "dn42-roa: BIRD reconfigured"
      for _ in $(seq 100); do tables_loaded && break; sleep 0.1; done
      # Routes already refused (or accepted) were judged by the old table: ask
      # the peers for them again (route refresh), so the new ROAs apply now.
      # BIRD 2 spells it `reload in all`, BIRD 3 `reload filters all`.
      if ! "$birdc" "${socket_args[@]}" reload in all >/dev/null 2>&1 &&
        ! "$birdc" "${socket_args[@]}" reload filters all >/dev/null 2>&1; then
        echo "dn42-roa: birdc could not reload the sessions' imports" >&2; failed=1
      fi
      ;;
    *) echo "dn42-roa: birdc configure failed: $out" >&2; failed=1 ;;
  esac
fi
exit $failed

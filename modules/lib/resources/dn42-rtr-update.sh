# Refresh DN42's ROA JSON for the local RTR cache (stayrtr); run by
# ibgp-tunnel's RTR timer (and by the lab) when dn42.roa.source = "rtr".
# Arguments: [--allow-http] URL FILE: FILE is the last good JSON stayrtr
# serves (it rereads it every refresh interval and tells BIRD what changed).
# Environment: ROA_MAX_BYTES (largest download accepted, default 8388608 =
# 8 MiB, dn42-defaults.toml's roa_max_bytes; DN42's JSON is a few hundred KiB).
#
# The same rules as the ROA files' refresh (dn42-roa-update.sh): https:// and
# file:// only unless --allow-http, at most ROA_MAX_BYTES, and a download
# replaces the installed file only when it is DN42's ROA JSON: an object whose
# "roas" is a non-empty list of {prefix, maxLength, asn} with a valid prefix, a
# maxLength between its length and the family's bits, and a 32-bit ASN
# (a number or "AS<n>"). Then by rename: stayrtr never reads half a file, and
# anything else keeps the last good file (stayrtr keeps serving it).
# Exit status: 0 when the file is current, 1 otherwise.
set -u
export LC_ALL=C

max_bytes=${ROA_MAX_BYTES:-8388608}
case $max_bytes in
  '' | *[!0-9]*)
    echo "dn42-rtr: ROA_MAX_BYTES must be a number of bytes, not '$max_bytes'" >&2
    exit 2
    ;;
esac
allow_http=0
if [ "${1:-}" = --allow-http ]; then
  allow_http=1
  shift
fi
if [ $# -ne 2 ]; then
  echo "dn42-rtr: usage: $0 [--allow-http] URL FILE" >&2
  exit 2
fi
url=$1 file=$2
warn() { echo "dn42-rtr: $*" >&2; }

case $url in
  https://* | file:///*) ;;
  http://*)
    if [ "$allow_http" != 1 ]; then
      warn "$url: only https:// and file:// URLs are fetched (http:// needs allowInsecureUrls); keeping $file"
      exit 1
    fi
    ;;
  *)
    warn "$url: only https:// and file:// URLs are fetched; keeping $file"
    exit 1
    ;;
esac

# The JSON's grammar: prints the number of entries, or why not (jq exits 1).
roa_json_entries() {
  jq -r '
    def octet: "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
    def v4: "\\A(" + octet + "[.]){3}" + octet + "/(3[0-2]|[12]?[0-9])\\z";
    def v6: "\\A[0-9A-Fa-f:]{2,39}/(12[0-8]|1[01][0-9]|[1-9]?[0-9])\\z";
    def group6: test("\\A[0-9A-Fa-f]{1,4}\\z");
    # An IPv6 address: hex groups of at most four digits, eight of them, or
    # fewer around one "::".
    def address6:
      (split("::") | length) as $parts
      | if $parts > 2 then false
        else (split("::") | map(if . == "" then [] else split(":") end)) as $halves
          | ($halves | add | length) as $groups
          | ($halves | add | all(group6))
            and (if $parts == 2 then $groups <= 7 else $groups == 8 end)
        end;
    def bad($why): error($why);
    def asn:
      if type == "number" then (. == floor and . >= 0 and . <= 4294967295)
      elif type == "string" then test("\\AAS(0|[1-9][0-9]{0,9})\\z") and ((.[2:] | tonumber) <= 4294967295)
      else false end;
    if type != "object" or (.roas | type) != "array" then bad("is not an object with a \"roas\" list")
    elif (.roas | length) == 0 then bad("holds no ROA entry")
    else
      .roas | to_entries[] | .key as $i | .value
      | if type != "object" then bad("roas[\($i)] is not an object")
        elif (.prefix | type) != "string" then bad("roas[\($i)].prefix is not a string")
        else
          (.prefix | if test(v4) then 32 elif test(v6) and (split("/")[0] | address6) then 128 else bad("roas[\($i)].prefix \(.[0:60] | @json) is not an IPv4 or IPv6 prefix") end) as $bits
          | (.prefix | split("/")[1] | tonumber) as $len
          | if (.maxLength | type) != "number" or .maxLength != (.maxLength | floor) or .maxLength < $len or .maxLength > $bits then
              bad("roas[\($i)].maxLength is not between the prefix length \($len) and \($bits)")
            elif (.asn | asn | not) then bad("roas[\($i)].asn is not a 32-bit AS number")
            else 1 end
        end
    end
  ' "$1" 2>&1 | awk '/^1$/ { n++; next } { print; bad = 1 } END { if (!bad) print n + 0; exit bad }'
}

dir=$(dirname "$file")
mkdir -p "$dir" || exit 1
tmp=$(mktemp "$dir/.roa-json-new.XXXXXX") || exit 1
trap 'rm -f "$tmp"' EXIT
protocols=https,file redirects=https
if [ "$allow_http" = 1 ]; then protocols=https,http,file redirects=https,http; fi
# At most max_bytes, as the ROA files' refresh: curl refuses an announced
# larger size (exit 63); head keeps one byte past the cap whatever is sent.
curl --fail --silent --show-error --location --proto "=$protocols" --proto-redir "=$redirects" \
  --max-filesize "$max_bytes" --max-time 120 "$url" | head -c "$((max_bytes + 1))" >"$tmp"
statuses=("${PIPESTATUS[@]}")
size=$(wc -c <"$tmp")
if [ "${statuses[0]}" = 63 ] || [ "$size" -gt "$max_bytes" ]; then
  warn "$url is larger than $max_bytes bytes (ROA_MAX_BYTES); keeping $file"
  exit 1
fi
if [ "${statuses[0]}" != 0 ] || [ "${statuses[1]}" != 0 ]; then
  warn "downloading $url failed; keeping $file"
  exit 1
fi
if ! why=$(roa_json_entries "$tmp"); then
  warn "$url is not DN42's ROA JSON: $(printf '%s' "$why" | head -c 300 | tr -c '[:print:]' ' '); keeping $file"
  exit 1
fi
entries=$why
if [ -f "$file" ] && cmp -s "$tmp" "$file"; then
  echo "dn42-rtr: $file is current ($entries entries)"
  exit 0
fi
chmod 0644 "$tmp"
sync "$tmp"
mv -f "$tmp" "$file"
sync "$dir"
echo "dn42-rtr: $file updated ($entries entries)"

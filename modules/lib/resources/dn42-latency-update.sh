# Measure DN42 peers' latency and keep BIRD's latency class current; run by
# ibgp-tunnel's dn42-latency timer (and by the lab) for the peers whose
# `latency = "auto"`. Arguments: [--probes N] then groups of five
# "name address interface file symbol": the peer, the address pinged (its BGP
# neighbour), the tunnel interface, the file bird.conf includes for it and the
# BIRD constant that file defines.
# Environment: BIRD, BIRDC, PING (commands; default bird, birdc, ping),
# BIRDC_SOCKET (optional control socket), BIRD_CONF (the config BIRD runs;
# default /etc/bird/bird.conf, NixOS's).
#
# Per peer: N pings over the tunnel, the median round-trip time, DN42's class
# (howto/BGP-communities: 1 under 2.7 ms, x under e^x ms, 9 beyond). A file is
# rewritten only when the class changes, after BIRD parsed the real bird.conf
# with the new file in place; then BIRD is reconfigured once (the old files
# come back if it refuses). Fewer than half the probes answered: the class
# stays. Beside each file, <file>.rtt holds the last median (ms, or "lost"),
# which doctor shows, and the directory's dn42-latency.prom the classes and
# times as Prometheus text (node exporter's textfile collector format).
# Exit status: 0 when every peer was measured and BIRD holds its class, 1
# otherwise, 2 on bad arguments.
set -u
export LC_ALL=C

bird=${BIRD:-bird}
birdc=${BIRDC:-birdc}
ping=${PING:-ping}
conf=${BIRD_CONF:-/etc/bird/bird.conf}
socket_args=()
if [ -n "${BIRDC_SOCKET:-}" ]; then socket_args=(-s "$BIRDC_SOCKET"); fi
warn() { echo "dn42-latency: $*" >&2; }
usage() {
  warn "usage: $0 [--probes N] (NAME ADDRESS INTERFACE FILE SYMBOL)..."
  exit 2
}

probes=5
if [ "${1:-}" = --probes ]; then
  probes=${2:-}
  shift 2 || usage
fi
case $probes in '' | *[!0-9]* | 0 | ???*) warn "--probes takes 1 to 99, not '$probes'"; exit 2 ;; esac
if [ $# -eq 0 ] || [ $(($# % 5)) -ne 0 ]; then usage; fi

work=$(mktemp -d) || exit 1
trap 'rm -rf "$work"' EXIT
failed=0

# The class of a median in ms: the smallest x (1..9) with rtt < e^x.
class_of() {
  awk -v rtt="$1" 'BEGIN { c = 1; while (c < 9 && rtt >= exp(c)) c++; print c }'
}

# The median of the round-trip times ping printed, or nothing when fewer
# than half the probes came back.
median() {
  "$ping" -n -c "$probes" -i 0.2 -W 2 -I "$2" "$1" 2>/dev/null |
    sed -n 's/.* time=\([0-9][0-9.]*\) ms.*/\1/p' | sort -n |
    awk -v want="$probes" '{ t[NR] = $1 } END {
      if (NR == 0 || 2 * NR < want) exit 1
      if (NR % 2) print t[(NR + 1) / 2]; else printf "%.3f\n", (t[NR / 2] + t[NR / 2 + 1]) / 2
    }'
}

# config_loads (shared with the other scripts that change what bird.conf
# includes): from the tree it is read beside this file; the core's copy has it
# in place of the next line (modules/lib/render/resource-script.nix).
. "$(dirname "${BASH_SOURCE[0]}")/bird-config-loads.sh" || exit 1

changes=() # pairs: file, candidate
metrics=$work/metrics
dirs=()
: >"$metrics"
while [ $# -ge 5 ]; do
  name=$1 address=$2 interface=$3 file=$4 symbol=$5
  shift 5
  # Each value reaches a file BIRD parses or a command line: only what the
  # core emits for them is taken.
  if ! [[ $name =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$ && $address =~ ^[0-9A-Fa-f:.]{2,45}$ &&
    $interface =~ ^[A-Za-z0-9_.-]{1,15}$ && $file =~ ^/[A-Za-z0-9_./-]+\.conf$ &&
    $file != *..* && $symbol =~ ^[A-Za-z_][A-Za-z0-9_]{0,63}$ ]]; then
    warn "refusing the peer arguments '$name' '$address' '$interface' '$file' '$symbol'"
    failed=1
    continue
  fi
  dir=$(dirname "$file")
  dirs+=("$dir")
  # The class this script wrote: one define, nothing but comments beside it. Anything
  # else (a planted or truncated file) counts as none, so it is replaced.
  current=$(awk -v sym="$symbol" '
    /^#[ -~]*$/ { next }
    $0 ~ ("^define " sym " = [1-9];$") { n++; c = substr($0, length($0) - 1, 1); next }
    { bad = 1 }
    END { if (!bad && n == 1) print c }
  ' "$file" 2>/dev/null)
  if rtt=$(median "$address" "$interface"); then
    class=$(class_of "$rtt")
    printf '%s\n' "$rtt" >"$file.rtt.new" && mv -f "$file.rtt.new" "$file.rtt"
    # Prometheus' base unit: seconds (the class table and doctor speak ms).
    awk -v peer="$name" -v ms="$rtt" 'BEGIN { printf "ibgp_tunnel_dn42_latency_rtt_seconds{peer=\"%s\"} %.6f\n", peer, ms / 1000 }' >>"$metrics"
  else
    warn "$name: fewer than half of $probes pings to $address on $interface answered; keeping class ${current:-none}"
    echo lost >"$file.rtt.new" && mv -f "$file.rtt.new" "$file.rtt"
    failed=1
    class=$current
  fi
  [ -n "$class" ] && printf 'ibgp_tunnel_dn42_latency_class{peer="%s"} %s\n' "$name" "$class" >>"$metrics"
  if [ -n "$class" ] && [ "$class" != "$current" ]; then
    cand=$(mktemp "$dir/.latency-new.XXXXXX") || { failed=1; continue; }
    printf '# Written by dn42-latency: median %s ms over %s pings.\ndefine %s = %s;\n' "$rtt" "$probes" "$symbol" "$class" >"$cand"
    chmod 0644 "$cand"
    changes+=("$file" "$cand")
    echo "dn42-latency: $name: ${rtt} ms, class ${current:-none} -> $class"
  fi
done

# The Prometheus text, beside the first file (one directory in practice).
if [ ${#dirs[@]} -gt 0 ]; then
  {
    echo "# HELP ibgp_tunnel_dn42_latency_class DN42 latency class (64511, x) BIRD sets on the peer's routes."
    echo "# TYPE ibgp_tunnel_dn42_latency_class gauge"
    grep '^ibgp_tunnel_dn42_latency_class' "$metrics" || true
    echo "# HELP ibgp_tunnel_dn42_latency_rtt_seconds Median round-trip time over the peer's tunnel, last measurement."
    echo "# TYPE ibgp_tunnel_dn42_latency_rtt_seconds gauge"
    grep '^ibgp_tunnel_dn42_latency_rtt_seconds' "$metrics" || true
  } >"${dirs[0]}/.dn42-latency.prom.new" && mv -f "${dirs[0]}/.dn42-latency.prom.new" "${dirs[0]}/dn42-latency.prom"
fi

[ ${#changes[@]} -gt 0 ] || exit "$failed"
if ! why=$(config_loads "${changes[@]}" 2>&1); then
  warn "$conf would not load with the new classes: $why; keeping the installed files"
  for ((i = 1; i < ${#changes[@]}; i += 2)); do rm -f "${changes[i]}"; done
  exit 1
fi
installed=()
for ((i = 0; i < ${#changes[@]}; i += 2)); do
  file=${changes[i]}
  rm -f "$file.previous"
  [ -f "$file" ] && cp -p "$file" "$file.previous"
  mv -f "${changes[i + 1]}" "$file"
  installed+=("$file")
done
out=$("$birdc" "${socket_args[@]}" configure 2>&1)
case $out in
  *"Reconfigured"* | *"Reconfiguration in progress"* | *"Reconfiguration already in progress"*)
    for file in "${installed[@]}"; do rm -f "$file.previous"; done
    echo "dn42-latency: BIRD reconfigured"
    ;;
  *)
    if ! "$birdc" "${socket_args[@]}" show status >/dev/null 2>&1; then
      warn "BIRD does not answer (birdc configure: $out); it reads the new classes when it starts"
      for file in "${installed[@]}"; do rm -f "$file.previous"; done
    else
      warn "birdc configure failed: $out; the previous classes come back"
      for file in "${installed[@]}"; do
        if [ -f "$file.previous" ]; then mv -f "$file.previous" "$file"; fi
      done
      "$birdc" "${socket_args[@]}" configure >/dev/null 2>&1
    fi
    failed=1
    ;;
esac
exit "$failed"

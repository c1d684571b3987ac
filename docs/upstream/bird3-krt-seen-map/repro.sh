#!/usr/bin/env bash
# BIRD 3: a route withdrawn and announced again between two kernel scans is not
# written to the kernel until the next scan (`scan time`), when the new route
# gets the table route id of the one withdrawn (ids are recycled lowest-first).
#
# Two namespaces, one BGP session, no BFD, no graceful restart:
#   a announces 10.99.0.0/24 (a static route, next hop self);
#   b learns it over BGP and writes it to its kernel (scan time 10, so
#   scans at 1, 11, 21 ... s after b starts).
# After b's scan at 11 s has seen the route in the kernel, a's static
# protocol is disabled and, a second later, enabled again. b's BIRD has the
# route back within milliseconds, but b's kernel does not until b's next scan.
#
# Usage (root): repro.sh [BIRD_BIN_DIR]   (directory holding bird and birdc)
# Prints "b's kernel has it after X s" (BIRD 2.17.6: under 0.2 s; BIRD 3.1.8:
# until b's scan at 21 s, about 7 s) and exits 1 if that took over 2 s.
set -euo pipefail

bin=${1:-$(dirname "$(command -v bird)")}
run=$(mktemp -d /tmp/bird-krt-repro.XXXXXX)
a=krtrepro-a b=krtrepro-b

cleanup() {
  for ns in $a $b; do
    [[ -f $run/$ns.pid ]] && kill "$(cat "$run/$ns.pid")" 2>/dev/null || true
    ip netns del $ns 2>/dev/null || true
  done
  rm -rf "$run"
}
trap cleanup EXIT

ip netns add $a
ip netns add $b
ip link add va netns $a type veth peer name vb netns $b
ip -n $a addr add 10.0.0.1/30 dev va
ip -n $b addr add 10.0.0.2/30 dev vb
ip -n $a link set va up
ip -n $b link set vb up
ip -n $a link set lo up
ip -n $b link set lo up

cat >"$run/$a.conf" <<CONF
router id 10.0.0.1;
protocol device { }
protocol static announce { ipv4; route 10.99.0.0/24 blackhole; }
protocol bgp ab { local 10.0.0.1 as 65000; neighbor 10.0.0.2 as 65000;
  ipv4 { import none; export where source = RTS_STATIC; next hop self; }; }
CONF
cat >"$run/$b.conf" <<CONF
router id 10.0.0.2;
protocol device { }
protocol kernel kern { scan time 10; ipv4 { import none; export all; }; }
protocol bgp ab { local 10.0.0.2 as 65000; neighbor 10.0.0.1 as 65000;
  ipv4 { import all; export none; }; }
CONF

for ns in $a $b; do
  ip netns exec $ns "$bin/bird" -c "$run/$ns.conf" -s "$run/$ns.ctl" -P "$run/$ns.pid"
done
started=$EPOCHREALTIME
birdc() { "$bin/birdc" -s "$run/$1.ctl" "${@:2}"; }
in_kernel() { ip -n $b route show 10.99.0.0/24 | grep -q .; }
in_bird() { birdc $b show route for 10.99.0.0/24 | grep -q "10.99.0.0/24"; }
wait_for() {
  local what=$1 t0=$EPOCHREALTIME
  until "$what"; do
    sleep 0.05
    if (($(echo "$EPOCHREALTIME - $t0 > 40" | bc))); then echo "$what: not within 40 s"; exit 2; fi
  done
}

"$bin/bird" --version 2>&1 | head -1
wait_for in_kernel
# Let b's scan at 11 s see the route in the kernel.
sleep "$(echo "$started + 12.5 - $EPOCHREALTIME" | bc)"
echo "route in b's kernel; withdrawing and announcing it again"
birdc $a disable announce >/dev/null
until ! in_kernel; do sleep 0.05; done
sleep 1 # as long as a restarting neighbour is away
birdc $a enable announce >/dev/null
t0=$EPOCHREALTIME
wait_for in_bird
echo "b's BIRD has it after $(echo "$EPOCHREALTIME - $t0" | bc) s"
birdc $b show route for 10.99.0.0/24 | tail -n +2
wait_for in_kernel
took=$(echo "$EPOCHREALTIME - $t0" | bc)
echo "b's kernel has it after $took s"
if (($(echo "$took > 2" | bc))); then exit 1; fi

#!/usr/bin/env bash
# BIRD 3: after graceful-restart recovery (bird -R) ends, the kernel protocol
# starts its export only at its next periodic scan (up to `scan time` later);
# BIRD 2 starts it when recovery ends. Reproduction in one network namespace
# (root; BIRD=/path/to/bin holding bird and birdc, default: PATH).
# The BGP neighbour does not exist, so only `graceful restart wait 3` ends the
# recovery; the static route should reach the kernel ~3 s after start.
set -eu
BIRD=${BIRD:-$(dirname "$(command -v bird)")}
ns=grkrt-$$
dir=$(mktemp -d)
trap 'kill $(cat "$dir/pid" 2>/dev/null) 2>/dev/null || true; ip netns del $ns 2>/dev/null || true; rm -rf "$dir"' EXIT
ip netns add $ns
ip -n $ns link set lo up
ip -n $ns link add d0 type veth peer name d1
ip -n $ns link set d1 up
ip -n $ns addr add 10.0.0.1/24 dev d0
ip -n $ns link set d0 up
cat > "$dir/bird.conf" <<CONF
router id 10.0.0.1;
graceful restart wait 3;
protocol device {}
protocol static { ipv4; route 192.0.2.0/24 via 10.0.0.2; }
protocol kernel { scan time 20; graceful restart on; ipv4 { export all; }; }
protocol bgp down_neighbour {
  local 10.0.0.1 as 65000; neighbor 10.0.0.9 as 65000;
  graceful restart on; ipv4 { import all; export all; };
}
CONF
"$BIRD/bird" --version 2>&1
start=$(date +%s.%N)
ip netns exec $ns "$BIRD/bird" -R -c "$dir/bird.conf" -s "$dir/ctl" -P "$dir/pid"
recovery_end=
while :; do
  now=$(date +%s.%N)
  t=$(echo "$now - $start" | bc)
  if [ -z "$recovery_end" ] && ! "$BIRD/birdc" -s "$dir/ctl" show status | grep -q "recovery in progress"; then
    recovery_end=$t
    echo "recovery ended at ${t} s"
  fi
  if ip -n $ns route show 192.0.2.0/24 proto bird | grep -q .; then
    echo "route in the kernel at ${t} s"
    break
  fi
  if [ "$(echo "$t > 40" | bc)" = 1 ]; then echo "no route after 40 s"; break; fi
  sleep 0.1
done

#!/usr/bin/env bash
# Per-spawn cost of each network kind, side by side in one run, and whether bridged
# throughput holds over 30 s of sequential spawns:
#   none      a new network namespace, lo down
#   loopback  lo up (the default)
#   bridge    eth0 on a bridge: veth pair, address, default route, set up by the parent
# Every sandbox has every namespace of its own and runs /bin/true without the init. The
# whole run happens in a network namespace this script makes (unshare -n): the bridge and
# the veths never touch the machine's own network.
#
#   sudo benches/network.sh                 # 3 rounds × 500 spawns per kind, then 30 s
#   ROUNDS=5 N=1000 DURATION=60 benches/network.sh
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "network.sh: needs root" >&2; exit 1; }
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
S=/tmp/sandbox-bench
ROUNDS=${ROUNDS:-3} N=${N:-500} DURATION=${DURATION:-30}
mkdir -p "$S"
. "$HERE/lib.sh"
OURS=$(spawn_loop_bin "$TOP")
DATA=$S/network.tsv
: > "$DATA"
for r in $(seq 1 "$ROUNDS"); do
  for k in none loopback bridge; do
    drain
    line=$(unshare -n "$OURS" -n "$N" --net "$k" all)
    printf '%s\t%s\t%s\n' "$k" "$r" "$(sed -E 's/.*median_us=([0-9.]+).*/\1/' <<<"$line")" >> "$DATA"
    echo "round $r: $line" >&2
  done
done
drain
unshare -n "$OURS" --duration "$DURATION" --net bridge all > "$S/network-duration.txt"
cat "$S/network-duration.txt" >&2
python3 - "$DATA" "$ROUNDS" "$N" "$S/network-duration.txt" <<'PY'
import statistics, sys, re
rows = [l.split("\t") for l in open(sys.argv[1]).read().split("\n") if l]
d = {}
for k, r, v in rows:
    d.setdefault(k, {})[int(r)] = float(v)
print("| network (all namespaces, /bin/true) | median µs | ratio to none |")
print("|---|---:|---:|")
for k in ["none", "loopback", "bridge"]:
    med = statistics.median(d[k].values())
    ratio = statistics.median(d[k][r] / d["none"][r] for r in d[k])
    print(f"| {k} | {med:.0f} | {ratio:.2f}× |")
print(f"({sys.argv[2]} rounds × {sys.argv[3]} spawns; ratios: median of per-round ratios)")
text = open(sys.argv[4]).read()
w = [float(x) for x in re.findall(r"window_end_s=\d+ rate_per_s=([0-9.]+)", text)]
tot = re.search(r"total=(\d+) rate_per_s=([0-9.]+)", text)
if w and tot:
    print(f"\nbridge, sequential, {len(w)} windows of 5 s: " + ", ".join(f"{x:.0f}" for x in w)
          + f" spawns/s; overall {float(tot.group(2)):.0f}/s ({tot.group(1)} sandboxes)")
PY

#!/usr/bin/env bash
# What the default hardening costs per spawn: the same sandbox (user, pid, mnt, uts, ipc
# namespaces; /bin/true) with the default seccomp profile loaded and without any filter.
# Capabilities are dropped, no_new_privs set and a session made in both (they cannot be
# turned off: a few system calls). Rounds alternate so drift hits both alike.
#
#   sudo benches/security.sh            # 3 rounds × 1000 spawns
#   ROUNDS=5 N=2000 benches/security.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
ROUNDS=${ROUNDS:-3} N=${N:-1000}
(cd "$TOP" && cargo bench --bench spawn_loop --no-run -q 2>/dev/null)
OURS=$TOP/$(cd "$TOP" && ls -t target/release/deps/spawn_loop-* | grep -v '\.d$' | head -1)
DATA=$(mktemp)
trap 'rm -f "$DATA"' EXIT
for r in $(seq 1 "$ROUNDS"); do
  for k in default off; do
    line=$("$OURS" -n "$N" --seccomp "$k" user user-init)
    while read -r l; do
      cfg=$(sed -E 's/.*config=([^ ]+).*/\1/' <<<"$l")
      printf '%s\t%s\t%s\n' "$cfg" "$r" "$(sed -E 's/.*median_us=([0-9.]+).*/\1/' <<<"$l")" >> "$DATA"
      echo "round $r: $l" >&2
    done <<<"$line"
  done
done
python3 - "$DATA" "$ROUNDS" "$N" <<'PY'
import statistics, sys
d = {}
for l in open(sys.argv[1]).read().split("\n"):
    if l:
        k, r, v = l.split("\t")
        d.setdefault(k, {})[int(r)] = float(v)
print("| config | seccomp default (µs) | seccomp off (µs) | cost (µs) |")
print("|---|---:|---:|---:|")
for base in ["user", "user-init"]:
    on, off = d[base], d[base + "+noseccomp"]
    diff = statistics.median(on[r] - off[r] for r in on)
    print(f"| {base} | {statistics.median(on.values()):.0f} | {statistics.median(off.values()):.0f} | {diff:.0f} |")
print(f"({sys.argv[2]} rounds × {sys.argv[3]} sequential spawns, medians)")
PY

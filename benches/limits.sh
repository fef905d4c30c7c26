#!/usr/bin/env bash
# What limits cost: the per-spawn cost of a cgroup (created, the child moved in, read and
# removed at the end; v1 on this machine) side by side with the same sandbox without one,
# and the judge's throughput on a trivial accepted submission.
#
#   sudo benches/limits.sh                  # 3 rounds × 1000 spawns, 200 judge tests
#   ROUNDS=5 N=2000 TESTS=500 benches/limits.sh
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "limits.sh: needs root" >&2; exit 1; }
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
S=/tmp/sandbox-bench
ROUNDS=${ROUNDS:-3} N=${N:-1000} TESTS=${TESTS:-200}
mkdir -p "$S"
. "$HERE/lib.sh"
(cd "$TOP" && cargo build --release -q --example judge)
OURS=$(spawn_loop_bin "$TOP")
DATA=$S/limits.tsv
: > "$DATA"
for r in $(seq 1 "$ROUNDS"); do
  for k in plain cgroup; do
    flag=(); [ "$k" = cgroup ] && flag=(--cgroup)
    line=$("$OURS" -n "$N" "${flag[@]}" user)
    printf '%s\t%s\t%s\n' "$k" "$r" "$(sed -E 's/.*median_us=([0-9.]+).*/\1/' <<<"$line")" >> "$DATA"
    echo "round $r: $line" >&2
  done
done
# The judge: TESTS copies of one small test, a trivial accepted C submission.
J=$S/judge-tests
rm -rf "$J"; mkdir -p "$J"
for i in $(seq 1 "$TESTS"); do printf '1 2\n' > "$J/$i.in"; printf '3\n' > "$J/$i.out"; done
start=$(date +%s.%N)
"$TOP/target/release/examples/judge" "$TOP/examples/judge/submissions/ok.c" "$J" --json > "$S/judge.json"
end=$(date +%s.%N)
python3 - "$DATA" "$ROUNDS" "$N" "$start" "$end" "$TESTS" "$S/judge.json" <<'PY'
import statistics, sys, json
rows = [l.split("\t") for l in open(sys.argv[1]).read().split("\n") if l]
d = {}
for k, r, v in rows:
    d.setdefault(k, {})[int(r)] = float(v)
plain = statistics.median(d["plain"].values())
cg = statistics.median(d["cgroup"].values())
diff = statistics.median(d["cgroup"][r] - d["plain"][r] for r in d["plain"])
print("| sandbox (user, pid, mnt, uts, ipc namespaces; /bin/true) | median µs |")
print("|---|---:|")
print(f"| without a cgroup | {plain:.0f} |")
print(f"| with a cgroup (memory + pids limits, v1) | {cg:.0f} |")
print(f"| cost of the cgroup (median of per-round differences) | {diff:.0f} |")
print(f"({sys.argv[2]} rounds × {sys.argv[3]} spawns)")
lines = [json.loads(l) for l in open(sys.argv[7])]
summary = lines[-1]
wall = float(sys.argv[5]) - float(sys.argv[4])
n = int(sys.argv[6])
print(f"\njudge: {n} tests of a trivial accepted C submission (compile included) in {wall:.2f} s: "
      f"{n / wall:.0f} runs/s; summary {summary}")
PY

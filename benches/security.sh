#!/usr/bin/env bash
# What the default hardening costs: per spawn, the same sandbox (user, pid, mnt, uts, ipc
# namespaces; /bin/true) with the default seccomp profile loaded and without any filter;
# and for a syscall-heavy program (10 million getppid calls, benches/programs/) run in it.
# Capabilities are dropped, no_new_privs set and a session made in both (they cannot be
# turned off: a few system calls). Rounds alternate so drift hits both alike.
#
#   sudo benches/security.sh            # 3 rounds × 1000 spawns
#   ROUNDS=5 N=2000 benches/security.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
ROUNDS=${ROUNDS:-3} N=${N:-1000}
. "$HERE/lib.sh"
OURS=$(spawn_loop_bin "$TOP")
DATA=$(mktemp)
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
# The syscall-heavy program: each run's total time (spawn included) with and without.
LOOP=$(mktemp)
trap 'rm -f "$DATA" "$LOOP"' EXIT
gcc -O2 -static -o "$LOOP" "$HERE/programs/getppid_loop.c"
chmod 755 "$LOOP"
for r in $(seq 1 "$ROUNDS"); do
  for k in default off; do
    line=$("$OURS" -n 5 -x "$LOOP" --seccomp "$k" user)
    printf 'getppid%s\t%s\t%s\n' "$([ "$k" = off ] && echo +noseccomp)" "$r" \
      "$(sed -E 's/.*median_us=([0-9.]+).*/\1/' <<<"$line")" >> "$DATA"
    echo "round $r: $line" >&2
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
on, off = d["getppid"], d["getppid+noseccomp"]
m_on, m_off = statistics.median(on.values()), statistics.median(off.values())
print(f"\n10 million getppid calls in the sandbox: {m_on/1000:.0f} ms with the default "
      f"filter, {m_off/1000:.0f} ms without ({(m_on/m_off - 1)*100:+.1f} %; "
      f"{(m_on - m_off) * 1000 / 1e7:.1f} ns per call; median of {sys.argv[2]} rounds × 5 runs)")
PY

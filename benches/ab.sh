#!/usr/bin/env bash
# A/B spawn benchmark: benches/spawn_loop.rs as of git revision REV against the working
# tree, interleaved in one run, so a change's cost or gain is measured side by side rather
# than across two runs of a drifting VM.
#
#   sudo benches/ab.sh REV                    # 5 rounds × 1000 spawns of each configuration
#   ROUNDS=3 N=500 benches/ab.sh main~3 user all-init
#   ARGS=--cgroup benches/ab.sh main~3 user-init   # extra spawn_loop options, both sides
#
# Configurations are spawn_loop's (`base`, `user`, `user-init`, `net`, `all-init`, …), plus
# `rootfs` (every namespace, a busybox root entered with pivot_root, as compare.sh's
# `all+rootfs`). Each round runs every configuration once per side, the side going first
# alternating between rounds; the report gives each side's median of round medians and the
# median of the per-round ratios (new / old). REV is built in a temporary worktree under
# /tmp/sandbox-bench-ab, which is removed at the end.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "ab.sh: needs root" >&2; exit 1; }
REV=${1:?usage: ab.sh REV [CONFIG...]}
shift
CONFIGS=("$@")
[ ${#CONFIGS[@]} -gt 0 ] || CONFIGS=(base user user-init net all-init rootfs)
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
S=/tmp/sandbox-bench-ab
ROUNDS=${ROUNDS:-5} N=${N:-1000}
mkdir -p "$S"
DATA=$S/data.tsv
: > "$DATA"

# ---- build both sides -------------------------------------------------------------------
. "$HERE/lib.sh"
R=$S/rootfs
busybox_root "$R"
OLD_TREE=$S/old
rm -rf "$OLD_TREE"; git -C "$TOP" worktree prune
git -C "$TOP" worktree add -q --detach "$OLD_TREE" "$REV"
trap 'git -C "$TOP" worktree remove --force "$OLD_TREE" 2>/dev/null || true' EXIT
echo "building $REV and the working tree" >&2
OLD=$(spawn_loop_bin "$OLD_TREE" "$S/target-old")
NEW=$(spawn_loop_bin "$TOP")

med() { sed -E 's/.*median_us=([0-9.]+).*/\1/'; }
one() {  # BIN CONFIG
  # shellcheck disable=SC2086 # ARGS: options, split on purpose
  case "$2" in
    rootfs) "$1" -n "$N" ${ARGS:-} --rootfs "$R" all | med ;;
    *) "$1" -n "$N" ${ARGS:-} "$2" | med ;;
  esac
}

# ---- rounds -----------------------------------------------------------------------------
for r in $(seq "$ROUNDS"); do
  echo "round $r/$ROUNDS" >&2
  for c in "${CONFIGS[@]}"; do
    drain
    if [ $((r % 2)) = 1 ]; then order="old new"; else order="new old"; fi
    for side in $order; do
      if [ "$side" = old ]; then bin=$OLD; else bin=$NEW; fi
      printf '%s\t%s\t%s\t%s\n' "$c" "$side" "$r" "$(one "$bin" "$c")" >> "$DATA"
    done
  done
done

# ---- report -----------------------------------------------------------------------------
python3 - "$DATA" "$REV" <<'PY'
import sys, statistics, collections
v = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    c, side, r, x = line.rstrip("\n").split("\t")
    v[(c, side)][int(r)] = float(x)
configs = list(dict.fromkeys(c for c, _ in v))
print(f"| configuration | {sys.argv[2]} (µs) | working tree (µs) | new / old (median of rounds) |")
print("|---|---|---|---|")
for c in configs:
    old, new = v[(c, "old")], v[(c, "new")]
    ratios = [new[r] / old[r] for r in old if r in new]
    print(f"| {c} | {statistics.median(old.values()):.0f} | {statistics.median(new.values()):.0f} "
          f"| {statistics.median(ratios):.3f} (rounds: {', '.join(f'{x:.2f}' for x in ratios)}) |")
PY

#!/usr/bin/env bash
# Per-spawn cost of each root filesystem kind, side by side in one run:
#   host     no new root (the caller's tree, private mount table, fresh /proc): the baseline
#   host-ro  Rootfs::host_readonly()
#   dir      Rootfs::dir(busybox tree), read-only
#   overlay  Rootfs::overlay([busybox tree]), writes on a per-sandbox tmpfs
#   image    Rootfs::image(docker-export tarball of the same tree), from the cache
# Every sandbox has every namespace of its own and runs /bin/true without the init.
#
#   sudo benches/rootfs.sh                  # 3 rounds of 1000 spawns per kind
#   ROUNDS=5 N=2000 benches/rootfs.sh
#
# Prints a markdown table: the median of the rounds' medians per kind, and the median of
# the per-round ratios to `host` (each round runs every kind back to back). Scratch space:
# /tmp/sandbox-bench (busybox tree, tarball, image cache).
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "rootfs.sh: needs root" >&2; exit 1; }
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
S=/tmp/sandbox-bench
ROUNDS=${ROUNDS:-3} N=${N:-1000}
mkdir -p "$S"
if [ ! -x /bin/busybox ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends busybox-static >/dev/null
fi
R=$S/rootfs
if [ ! -x "$R/bin/true" ]; then
  rm -rf "$R"; mkdir -p "$R"/{bin,proc,sys,dev,tmp,etc,root}
  cp /bin/busybox "$R/bin/busybox"
  chroot "$R" /bin/busybox --install -s /bin
  echo "root:x:0:0:root:/root:/bin/sh" > "$R/etc/passwd"
fi
T=$S/busybox-export.tar
[ -f "$T" ] || tar -C "$R" -cf "$T" .
C=$S/image-cache
(cd "$TOP" && cargo bench --bench spawn_loop --no-run -q 2>/dev/null)
OURS=$TOP/$(cd "$TOP" && ls -t target/release/deps/spawn_loop-* | grep -v '\.d$' | head -1)
DATA=$S/rootfs.tsv
: > "$DATA"
KINDS="host host-ro dir overlay image"
for r in $(seq 1 "$ROUNDS"); do
  for k in $KINDS; do
    line=$("$OURS" -n "$N" --root "$k" --rootfs "$R" --image "$T" --image-cache "$C" all)
    printf '%s\t%s\t%s\n' "$k" "$r" "$(sed -E 's/.*median_us=([0-9.]+).*/\1/' <<<"$line")" >> "$DATA"
    echo "round $r: $line" >&2
  done
done
python3 - "$DATA" "$ROUNDS" "$N" <<'PY'
import statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().split("\n") if l]
d = {}
for k, r, v in rows:
    d.setdefault(k, {})[int(r)] = float(v)
print(f"| root (all namespaces, /bin/true) | median µs ({sys.argv[2]} rounds × {sys.argv[3]}) | ratio to host |")
print("|---|---:|---:|")
for k in ["host", "host-ro", "dir", "overlay", "image"]:
    med = statistics.median(d[k].values())
    ratio = statistics.median(d[k][r] / d["host"][r] for r in d[k])
    print(f"| {k} | {med:.0f} | {ratio:.2f}× |")
PY

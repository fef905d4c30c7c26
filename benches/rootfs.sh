#!/usr/bin/env bash
# Per-spawn cost of each root filesystem kind, side by side in one run:
#   host     no new root (the caller's tree, private mount table, fresh /proc): the baseline
#   host-ro  Rootfs::host_readonly()
#   dir      Rootfs::dir(busybox tree with /etc/hostname, hosts, resolv.conf), read-only
#   dir-bare Rootfs::dir(busybox tree of /bin only), read-only: built on a sealed overlay
#   overlay  Rootfs::overlay([busybox tree]), writes on a per-sandbox tmpfs
#   image    Rootfs::image(docker-export tarball of the same tree), from the cache
# Each kind runs in two configurations, /bin/true without the init: `user` (new user,
# mount, PID, UTS, IPC namespaces; the host's network, so /sys is the host's, bound
# read-only), which isolates the cost of the root from the kernel's slow network-namespace
# teardown, and `all` (every namespace, fresh sysfs), what `Sandbox::new()` does.
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
. "$HERE/lib.sh"
R=$S/rootfs
busybox_root "$R"
# With the files every root gets generated, a read-only tree is bound as it is.
for f in hostname hosts resolv.conf; do [ -f "$R/etc/$f" ] || : > "$R/etc/$f"; done
# The same tree as `busybox --install` leaves it (only /bin): read-only, it gets a
# copy-on-write layer of its own for the mount points and /etc files (dir-bare).
B=$S/rootfs-bare
if [ ! -x "$B/bin/true" ]; then
  rm -rf "$B"; mkdir -p "$B/bin"
  cp /bin/busybox "$B/bin/busybox"
  chroot "$B" /bin/busybox --install -s /bin
fi
T=$S/busybox-export.tar
[ -f "$T" ] || tar -C "$R" -cf "$T" .
C=$S/image-cache
OURS=$(spawn_loop_bin "$TOP")
DATA=$S/rootfs.tsv
: > "$DATA"
KINDS="host host-ro dir dir-bare overlay image"
for r in $(seq 1 "$ROUNDS"); do
  for cfg in user all; do
    for k in $KINDS; do
      drain
      if [ "$k" = dir-bare ]; then tree=$B kind=dir; else tree=$R kind=$k; fi
      line=$("$OURS" -n "$N" --root "$kind" --rootfs "$tree" --image "$T" --image-cache "$C" "$cfg")
      printf '%s\t%s\t%s\n' "$cfg:$k" "$r" "$(sed -E 's/.*median_us=([0-9.]+).*/\1/' <<<"$line")" >> "$DATA"
      echo "round $r: $line" >&2
    done
  done
done
python3 - "$DATA" "$ROUNDS" "$N" <<'PY'
import statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().split("\n") if l]
d = {}
for k, r, v in rows:
    d.setdefault(k, {})[int(r)] = float(v)
print(f"| root | `user`: median µs | ratio to host | `all`: median µs | ratio to host |")
print("|---|---:|---:|---:|---:|")
for k in ["host", "host-ro", "dir", "dir-bare", "overlay", "image"]:
    cells = []
    for cfg in ["user", "all"]:
        key, base = f"{cfg}:{k}", f"{cfg}:host"
        med = statistics.median(d[key].values())
        ratio = statistics.median(d[key][r] / d[base][r] for r in d[key])
        cells += [f"{med:.0f}", f"{ratio:.2f}×"]
    print(f"| {k} | " + " | ".join(cells) + " |")
print(f"({sys.argv[2]} rounds × {sys.argv[3]} spawns; ratios: median of per-round ratios)")
PY

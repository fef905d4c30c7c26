#!/usr/bin/env bash
# Side-by-side spawn benchmark, in one run, on this machine:
#   ours (sandbox-core, benches/spawn_loop.rs), tokio::process, the C clone loop
#   (benches/peers/floor.c: the kernel's floor), hakoniwa 1.x (benches/peers/hako) and
#   bubblewrap (whole command, with our `run` example beside it).
#
#   sudo benches/compare.sh                 # 3 rounds, ~10 minutes, prints markdown tables
#   ROUNDS=5 N=2000 benches/compare.sh
#
# The last table is the one to read first: tokio::process, the C floor, ours cold, cold with
# limits, a fresh pool and a reused pool, hakoniwa and bwrap — per spawn and sandboxes/s.
#
# Every configuration runs once per round, each of ours right after the C floor doing the
# same work. The table gives the median of the rounds' medians, and ratios as the median of
# the per-round ratios (pairs measured seconds apart): this VM has slow spells, mostly while
# the kernel tears down network namespaces, so rounds wait for that backlog to drain and
# single runs mislead. Scratch space: /tmp/sandbox-bench (busybox rootfs, peers, results).
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "compare.sh: needs root" >&2; exit 1; }
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
S=/tmp/sandbox-bench
ROUNDS=${ROUNDS:-3} N=${N:-1000} NHAKO=${NHAKO:-300} NTHR=${NTHR:-400} PAR=${PAR:-4} RUNS=${RUNS:-100}
mkdir -p "$S"
DATA=$S/data.tsv
: > "$DATA"

# ---- setup -------------------------------------------------------------------------
. "$HERE/lib.sh"
need=()
command -v bwrap >/dev/null || need+=(bubblewrap)
command -v hyperfine >/dev/null || need+=(hyperfine)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v gcc >/dev/null || need+=(gcc libc6-dev)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
R=$S/rootfs
busybox_root "$R"
gcc -O2 -Wall -o "$S/floor" "$HERE/peers/floor.c"
(cd "$HERE/peers/hako" && CARGO_TARGET_DIR=$S/hako-target cargo build --release -q)
HAKO=$S/hako-target/release/hako-bench
(cd "$TOP" && cargo build --release -q --example run)
OURS=$(spawn_loop_bin "$TOP")
RUN=$TOP/target/release/examples/run

rec() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$DATA"; }   # key round value
med() { sed -E 's/.*median_us=([0-9.]+).*/\1/'; }
rate() { sed -E 's/.*rate_per_s=([0-9.]+).*/\1/'; }

# ---- rounds ------------------------------------------------------------------------
for r in $(seq "$ROUNDS"); do
  drain
  echo "round $r/$ROUNDS" >&2
  # Latency, in-process: same isolation side by side (no network namespace first).
  rec "floor:none (fork+exec)" "$r" "$("$S/floor" -n "$N" -f none -q | med)"
  rec "ours:tokio::process" "$r" "$("$OURS" -n "$N" tokio | med)"
  rec "floor:base(pid,uts,ipc,mnt)+proc" "$r" "$("$S/floor" -n "$N" -f uts,pid,ipc,ns -p -q | med)"
  rec "ours:base" "$r" "$("$OURS" -n "$N" base | med)"
  rec "ours:base-init" "$r" "$("$OURS" -n "$N" base-init | med)"
  rec "floor:+user+proc" "$r" "$("$S/floor" -n "$N" -f uts,pid,ipc,ns,user -p -q | med)"
  rec "ours:user" "$r" "$("$OURS" -n "$N" user | med)"
  rec "ours:user+heap256M" "$r" "$("$OURS" -n "$((N / 2))" --heap-mb 256 user | med)"
  rec "ours:user-init" "$r" "$("$OURS" -n "$N" user-init | med)"
  drain
  rec "floor:+user+net+proc" "$r" "$("$S/floor" -n "$N" -f uts,pid,ipc,ns,user,net -p -q | med)"
  rec "ours:net" "$r" "$("$OURS" -n "$N" net | med)"
  rec "ours:all-init (default)" "$r" "$("$OURS" -n "$N" all-init | med)"
  drain
  rec "floor:all+rootfs" "$r" "$("$S/floor" -n "$N" -f uts,pid,ipc,ns,user,net,cgroup -r "$R" -q | med)"
  rec "ours:all+rootfs" "$r" "$("$OURS" -n "$N" --rootfs "$R" all | med)"
  drain
  while read -r line; do
    cfg=$(sed -E 's/.*config=([^ ]+).*/\1/' <<<"$line")
    rec "hako:$cfg" "$r" "$(med <<<"$line")"
  done < <("$HAKO" "$NHAKO" default all | grep '^HAKO config=')
  drain
  # Whole commands (process start included).
  for pair in "bwrap|bwrap --unshare-all --die-with-parent --ro-bind $R / --proc /proc --dev /dev /bin/true" \
              "ours:run-cli|$RUN --rootfs $R --net none -- /bin/true"; do
    key=${pair%%|*}; cmd=${pair#*|}
    j=$S/hf.json
    hyperfine -N --style none --warmup 5 --runs "$RUNS" --export-json "$j" "$cmd" >/dev/null 2>&1
    rec "cmd:$key" "$r" "$(python3 -c "import json;print(json.load(open('$j'))['results'][0]['median']*1e6)")"
  done
  drain
  # Throughput, PAR in flight.
  rec "thr:floor:all+rootfs -j$PAR" "$r" "$("$S/floor" -n "$NTHR" -f uts,pid,ipc,ns,user,net,cgroup -r "$R" -j "$PAR" | rate)"
  rec "thr:ours:all+rootfs -j$PAR" "$r" "$("$OURS" -n "$NTHR" -j "$PAR" --rootfs "$R" all | rate)"
  rec "thr:ours:all-init -j$PAR" "$r" "$("$OURS" -n "$NTHR" -j "$PAR" all-init | rate)"
  rec "thr:ours:all-init seq" "$r" "$("$OURS" -n "$NTHR" -j 1 all-init | rate)"
  drain
  # One table: every way of running /bin/true in a sandbox (every namespace, the busybox
  # root), sequential latency and PAR in flight, beside tokio::process and the C floor.
  for kind in "cold|" "cold+limits|--cgroup" "pool fresh|--pool $PAR" "pool reused|--pool $PAR --reuse"; do
    name=${kind%%|*}; read -r -a opts <<<"${kind#*|}"
    rec "one:$name" "$r" "$("$OURS" -n "$N" "${opts[@]}" --rootfs "$R" all-init | med)"
    rec "onethr:$name" "$r" "$("$OURS" -n "$NTHR" -j "$PAR" "${opts[@]}" --rootfs "$R" all-init | rate)"
  done
  rec "onethr:tokio::process" "$r" "$("$OURS" -n "$NTHR" -j "$PAR" tokio | rate)"
done

# ---- report ------------------------------------------------------------------------
python3 - "$DATA" <<'PY'
import sys, statistics, collections
rows = collections.OrderedDict()
for line in open(sys.argv[1]):
    k, r, v = line.rstrip("\n").split("\t")
    try: rows.setdefault(k, {})[int(r)] = float(v)
    except ValueError: rows.setdefault(k, {})
m = {k: statistics.median(v.values()) for k, v in rows.items() if v}
def ratio(a, b):  # median over rounds of a/b, both measured in the same round
    rs = [rows[a][r] / rows[b][r] for r in rows[a] if r in rows.get(b, {})]
    return statistics.median(rs) if rs else None
pairs = {
  "ours:tokio::process": "floor:none (fork+exec)",
  "ours:base": "floor:base(pid,uts,ipc,mnt)+proc",
  "ours:base-init": "floor:base(pid,uts,ipc,mnt)+proc",
  "ours:user": "floor:+user+proc",
  "ours:user+heap256M": "floor:+user+proc",
  "ours:user-init": "floor:+user+proc",
  "ours:net": "floor:+user+net+proc",
  "ours:all-init (default)": "floor:+user+net+proc",
  "ours:all+rootfs": "floor:all+rootfs",
}
hako_pairs = {"ours:user-init": "hako:default", "ours:user": "hako:default", "ours:all-init (default)": "hako:all"}
print("| configuration | median per spawn (µs) | vs the C floor (same round) | vs hakoniwa (same isolation) |")
print("|---|---|---|---|")
for k, v in m.items():
    if k.startswith(("thr:", "cmd:", "one")): continue
    fl = pairs.get(k)
    r1 = ratio(k, fl) if fl else None
    h = hako_pairs.get(k)
    r2 = ratio(h, k) if h else None
    c1 = f"{r1:.2f}× {fl.split(':')[1]}" if r1 else ""
    c2 = f"{r2:.2f}× faster than {h}" if r2 else ""
    print(f"| {k} | {v:.0f} | {c1} | {c2} |")
print()
print("| whole command (hyperfine) | median (µs) |")
print("|---|---|")
for k, v in m.items():
    if k.startswith("cmd:"): print(f"| {k[4:]} | {v:.0f} |")
print()
print("| throughput | sandboxes/s |")
print("|---|---|")
for k, v in m.items():
    if k.startswith("thr:"): print(f"| {k[4:]} | {v:.0f} |")
print()
# The one table: per spawn (sequential) and sandboxes/s (PAR in flight), with ratios
# against the C floor doing the same namespaces and root in the same round.
floor_lat, floor_thr = "floor:all+rootfs", "thr:floor:all+rootfs -j4"
floor_thr = next((k for k in rows if k.startswith("thr:floor:all+rootfs")), floor_thr)
one = [
  ("tokio::process (no sandbox)", "ours:tokio::process", "onethr:tokio::process"),
  ("C clone loop (floor)", floor_lat, floor_thr),
  ("ours, cold", "one:cold", "onethr:cold"),
  ("ours, cold + limits (memory, pids: a cgroup)", "one:cold+limits", "onethr:cold+limits"),
  ("ours, pool fresh (made ahead, used once)", "one:pool fresh", "onethr:pool fresh"),
  ("ours, pool reused (reset between runs)", "one:pool reused", "onethr:pool reused"),
  ("hakoniwa (every namespace, its defaults)", "hako:all", None),
  ("bwrap --unshare-all (whole command)", "cmd:bwrap", None),
]
print("| /bin/true, every namespace, busybox root | per spawn (µs) | vs C floor | sandboxes/s, 4 in flight | vs C floor |")
print("|---|---:|---:|---:|---:|")
for label, lat, thr in one:
    l = f"{m[lat]:.0f}" if lat in m else ""
    lr = ratio(lat, floor_lat) if lat in m and lat != floor_lat else None
    t = f"{m[thr]:.0f}" if thr and thr in m else ""
    tr = ratio(thr, floor_thr) if thr and thr in m and thr != floor_thr else None
    print(f"| {label} | {l} | {f'{lr:.2f}×' if lr else ''} | {t} | {f'{tr:.2f}×' if tr else ''} |")
PY

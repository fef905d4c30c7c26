# Shared by the bench scripts (sourced).

# Waits until the kernel has destroyed the network namespaces of earlier spawns (the
# net_namespace slab stops shrinking), at most a minute: this VM slows down while a
# backlog of them is torn down, which would bias whatever runs next.
drain() {
  local last now same=0 t=0
  last=$(awk '/^net_namespace /{print $2}' /proc/slabinfo)
  while [ "$same" -lt 10 ] && [ "$t" -lt 600 ]; do
    sleep 0.1; t=$((t + 1))
    now=$(awk '/^net_namespace /{print $2}' /proc/slabinfo)
    if [ "$now" = "$last" ]; then same=$((same + 1)); else same=0; last=$now; fi
  done
}

# Builds benches/spawn_loop.rs (release, the bench profile, default features) from the
# checkout at $1 into the target directory $2 (default: the checkout's own) and prints the
# path of exactly that build (cargo names it; an older or other-featured build beside it is
# never picked). Fails, loudly, when the build does.
spawn_loop_bin() {
  local top=$1 target=${2:-$1/target} bin
  bin=$(cd "$top" && CARGO_TARGET_DIR=$target cargo bench --locked -q --bench spawn_loop \
          --no-run --message-format=json |
        python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "spawn_loop" and m.get("executable"):
        print(m["executable"])') || return 1
  [ -n "$bin" ] || { echo "spawn_loop_bin: no spawn_loop built in $top" >&2; return 1; }
  echo "$bin"
}

# A busybox root in $1 (made once): `busybox --install` into /bin, the mount points, and an
# /etc/passwd naming root. Installs busybox-static if the machine lacks it.
busybox_root() {
  local r=$1
  if [ ! -x /bin/busybox ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends busybox-static >/dev/null
  fi
  [ -x "$r/bin/true" ] && return 0
  rm -rf "$r"; mkdir -p "$r"/{bin,proc,sys,dev,tmp,etc,root}
  cp /bin/busybox "$r/bin/busybox"
  chroot "$r" /bin/busybox --install -s /bin
  echo "root:x:0:0:root:/root:/bin/sh" > "$r/etc/passwd"
}

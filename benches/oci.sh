#!/usr/bin/env bash
# OCI runtimes side by side: `RUNTIME run` of /bin/true from one busybox bundle (made with
# `sandbox-runtime spec`), whole commands timed by hyperfine, in one run:
#   sandbox-runtime   this repository's runtime (release build)
#   runc              Debian's runc
#   crun              Debian's crun (1.8 refuses this machine's hybrid cgroup layout: then
#                     its row says so instead of a time)
#
#   sudo benches/oci.sh              # 3 rounds of 200 runs each
#   ROUNDS=5 RUNS=500 benches/oci.sh
#
# Prints each runtime's median per round, and the median of the per-round ratios to runc.
# Installs runc, crun and hyperfine from Debian's packages if missing. Scratch space:
# /tmp/sandbox-bench-oci.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "oci.sh: needs root" >&2; exit 1; }
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
S=/tmp/sandbox-bench-oci
ROUNDS=${ROUNDS:-3} RUNS=${RUNS:-200}
. "$HERE/lib.sh"
need=()
command -v runc >/dev/null || need+=(runc)
command -v crun >/dev/null || need+=(crun)
command -v hyperfine >/dev/null || need+=(hyperfine)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
(cd "$TOP" && cargo build --locked -q --release -p sandbox-oci --bin sandbox-runtime)
OURS=$TOP/target/release/sandbox-runtime
rm -rf "$S"; mkdir -p "$S/bundle"
busybox_root "$S/bundle/rootfs"
"$OURS" spec --bundle "$S/bundle"
python3 - "$S/bundle/config.json" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["args"] = ["/bin/true"]
json.dump(c, open(sys.argv[1], "w"))
EOF

declare -A cmd=(
  [sandbox-runtime]="$OURS --root $S/state-ours run --bundle $S/bundle b"
  [runc]="runc --root $S/state-runc run --bundle $S/bundle b"
  [crun]="crun --root $S/state-crun run --bundle $S/bundle b"
)
order=(sandbox-runtime runc crun)
declare -A med
for name in "${order[@]}"; do
  if ! out=$(${cmd[$name]} 2>&1); then
    echo "$name: refuses to run here: $out" >&2
    cmd[$name]=""
  fi
done
for r in $(seq "$ROUNDS"); do
  echo "round $r/$ROUNDS" >&2
  for name in "${order[@]}"; do
    [ -n "${cmd[$name]}" ] || continue
    drain
    hyperfine -N -w 10 -r "$RUNS" --export-json "$S/$name-$r.json" "${cmd[$name]}" >/dev/null
    med[$name-$r]=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["median"]*1e6)' "$S/$name-$r.json")
  done
done
echo
echo "| runtime run of /bin/true (whole command) | median (µs) | vs runc |"
echo "|---|---:|---:|"
for name in "${order[@]}"; do
  if [ -z "${cmd[$name]}" ]; then
    echo "| $name | refuses to run here | |"
    continue
  fi
  vals=() ratios=()
  for r in $(seq "$ROUNDS"); do
    vals+=("${med[$name-$r]}")
    [ -n "${cmd[runc]}" ] && ratios+=("$(python3 -c "print(${med[$name-$r]}/${med[runc-$r]})")")
  done
  m=$(printf '%s\n' "${vals[@]}" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
  q=""
  [ ${#ratios[@]} -gt 0 ] && q=$(printf '%s\n' "${ratios[@]}" | sort -g | awk '{a[NR]=$1} END{printf "%.2f×", a[int((NR+1)/2)]}')
  printf '| %s | %.0f | %s |\n' "$name" "$m" "$q"
done

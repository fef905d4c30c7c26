#!/usr/bin/env bash
# Runs every test of the workspace (unit, integration, examples, doc tests).
#
# Needs root: the tests create namespaces, write id maps, and re-run parts of themselves
# as uid 65534 to check the unprivileged path. Installs the few Debian packages they use
# when missing (uidmap for newuidmap/newgidmap, procps, iproute2, python3, util-linux,
# busybox-static for the busybox root filesystems, runc to compare the OCI runtime with).
# Nothing else on the machine is changed: every mount, namespace and process a test makes
# is its own and is removed.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "scripts/test.sh: run it as root (the tests create namespaces and switch uids)" >&2
  exit 1
fi
need=()
[ -x /usr/bin/newuidmap ] || need+=(uidmap)
[ -x /usr/bin/python3 ] || need+=(python3)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v gcc >/dev/null 2>&1 || need+=(gcc libc6-dev)
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v ps >/dev/null 2>&1 || need+=(procps)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
for c in setpriv unshare ipcmk nsenter; do command -v "$c" >/dev/null 2>&1 || need+=(util-linux); done
# runc: sandbox-oci's parity test runs the same bundle under it.
command -v runc >/dev/null 2>&1 || need+=(runc)
if [ ${#need[@]} -gt 0 ]; then
  echo "scripts/test.sh: installing ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
cargo test --workspace --locked "$@"
# The spawn timeline is a cargo feature: its test, and the child's no-allocation test (the
# feature adds marks to the child), run again with it on. Only in a whole run: arguments
# (a filter, -p CRATE) select from the workspace run above.
if [ $# -eq 0 ]; then
  cargo test -p sandbox-core --locked --features timeline --test timeline --test no_alloc_in_child
  # The escape suites again, every attack in a sandbox of a warm pool (made ahead, the
  # program started by a request to its waiting init), then twice in one sandbox of a
  # reused pool: a pooled sandbox must hold as a spawned one does, also once used.
  SANDBOX_TEST_POOL=fresh cargo test -p sandbox-core --locked --test 'escape_*'
  SANDBOX_TEST_POOL=reused cargo test -p sandbox-core --locked --test 'escape_*'
fi

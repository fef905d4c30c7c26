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

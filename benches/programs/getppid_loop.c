/* A syscall-heavy program for benches/security.sh: N getppid calls (default 10 million). */
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 10000000;
  for (long i = 0; i < n; i++) syscall(SYS_getppid);
  return 0;
}

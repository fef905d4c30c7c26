/*
 * attacker: the sandboxed side of tests/exec_isolation.rs.
 *
 * usage: attacker CALLER-EXE MARKER
 * For six seconds (or until it succeeds) it watches its PID namespace for new processes
 * and opens each one's /proc/<pid>/mem for reading and writing. A process that maps
 * CALLER-EXE is a copy of the caller, which `Child::exec` puts into the sandbox before it
 * executes its program: in its writable mappings the attacker looks for MARKER and, where
 * it finds it, overwrites it with "PWNED!". Then it prints
 *   ATTACKER opened=N found=true|false
 * N being how many copies of the caller it could open. Where the protection holds, that
 * is "opened=0 found=false". (This program maps nothing of the caller's, so it never
 * takes itself for one.)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The whole of a file (of /proc: its size is unknown), NUL-terminated; NULL on error. */
static char *read_file(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return NULL;
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  for (;;) {
    if (!buf) {
      close(fd);
      return NULL;
    }
    if (len + 1 == cap) {
      char *bigger = realloc(buf, cap * 2);
      if (!bigger)
        free(buf);
      buf = bigger;
      cap *= 2;
      continue;
    }
    ssize_t n = read(fd, buf + len, cap - 1 - len);
    if (n < 0) {
      free(buf);
      close(fd);
      return NULL;
    }
    if (n == 0)
      break;
    len += n;
  }
  close(fd);
  buf[len] = 0;
  return buf;
}

static double seconds_since(const struct timespec *start) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (now.tv_sec - start->tv_sec) + (now.tv_nsec - start->tv_nsec) / 1e9;
}

/* Looks for `mark` in the writable mappings listed in `maps` of the process whose memory
   is `mem`, and overwrites the first one found. Returns whether it found one. */
static int overwrite_mark(int mem, char *maps, const char *mark) {
  size_t mark_len = strlen(mark);
  for (char *line = maps; line && *line;) {
    char *next = strchr(line, '\n');
    if (next)
      *next++ = 0;
    unsigned long a, b;
    char perms[5];
    if (sscanf(line, "%lx-%lx %4s", &a, &b, perms) == 3 && perms[0] == 'r' &&
        perms[1] == 'w') {
      size_t len = b - a;
      if (len > (size_t)64 << 20)
        len = (size_t)64 << 20;
      char *buf = malloc(len);
      ssize_t n = buf ? pread(mem, buf, len, (off_t)a) : -1;
      char *hit = n > 0 ? memmem(buf, n, mark, mark_len) : NULL;
      if (hit) {
        /* Overwritten or not, the mark was in reach: that is the escape. */
        ssize_t written = pwrite(mem, "PWNED!", 6, (off_t)(a + (hit - buf)));
        (void)written;
        free(buf);
        return 1;
      }
      free(buf);
    }
    line = next;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: attacker CALLER-EXE MARKER\n");
    return 2;
  }
  const char *exe = argv[1], *mark = argv[2];
  unsigned opened = 0;
  int found = 0;
  struct timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  while (seconds_since(&start) < 6 && !found) {
    char *last_text = read_file("/proc/sys/kernel/ns_last_pid");
    if (!last_text)
      continue;
    int last = atoi(last_text);
    free(last_text);
    for (int pid = last; pid <= last + 2; pid++) {
      char path[64];
      snprintf(path, sizeof path, "/proc/%d/mem", pid);
      int mem = open(path, O_RDWR | O_CLOEXEC);
      if (mem < 0)
        continue;
      snprintf(path, sizeof path, "/proc/%d/maps", pid);
      char *maps = read_file(path);
      if (maps && strstr(maps, exe)) {
        opened++;
        found |= overwrite_mark(mem, maps, mark);
      }
      free(maps);
      close(mem);
    }
  }
  printf("ATTACKER opened=%u found=%s\n", opened, found ? "true" : "false");
  return 0;
}

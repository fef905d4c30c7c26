// floor.c — the "physical floor" of a Linux sandbox spawn.
//
// In ONE process, loop N times: clone a child into fresh namespaces, the child
// execs a program (default /bin/true), the parent waitpid()s it.  Prints
// per-spawn latency statistics in microseconds.
//
// usage: floor [options]
//   -n N        iterations (default 1000)
//   -w W        warm-up iterations, not measured (default 20)
//   -f FLAGS    comma list of namespaces: uts,pid,ipc,ns,net,user,cgroup
//               "none" = plain fork+exec (default: uts,pid,ipc,ns)
//   -r ROOTFS   child also does a minimal container rootfs setup:
//               make / private, bind ROOTFS, mount proc, pivot_root, exec
//               (requires ns in FLAGS)
//   -p          child makes / private and mounts a fresh proc on /proc (no pivot_root;
//               what a sandbox over the host's own tree does; requires ns and pid)
//               [added in this copy for sandbox-core's benches/compare.sh]
//   -x PATH     program to exec (default /bin/true; inside ROOTFS if -r);
//               arguments after the options are passed to it (floor -x /bin/sleep 1)
//   -j P        throughput mode: P worker processes split N spawns; prints
//               total wall time and spawns/s (latency stats are per worker 0)
//   -v          use CLONE_VM|CLONE_VFORK (posix_spawn-like; not with user)
//   -q          print only the one-line summary
//
// Output line (machine-readable):
//   FLOOR flags=... n=... mean_us=... median_us=... p10_us=... p90_us=... min_us=... max_us=... [wall_s=... rate_per_s=...]
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int g_flags;
static const char *g_root;
static const char *g_prog = "/bin/true";
static int g_user;
static int g_proc_only;
static char **g_args; // extra argv for the program

struct child_arg {
  int syncfd; // read end; child waits for EOF/byte before exec (user ns)
};

static void die(const char *m) {
  perror(m);
  _exit(127);
}

static int child_fn(void *p) {
  struct child_arg *a = p;
  if (g_user) {
    char c;
    if (read(a->syncfd, &c, 1) != 1) _exit(126);
  }
  if (g_proc_only) {
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)) die("make-private");
    if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL)) die("proc");
  }
  if (g_root) {
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)) die("make-private");
    if (mount(g_root, g_root, NULL, MS_BIND | MS_REC, NULL)) die("bind root");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s/proc", g_root);
    if (mount("proc", buf, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL)) die("proc");
    if (chdir(g_root)) die("chdir");
    if (syscall(SYS_pivot_root, ".", ".")) die("pivot_root");
    if (umount2(".", MNT_DETACH)) die("umount old");
    if (chdir("/")) die("chdir /");
  }
  char *argv0[] = {(char *)g_prog, NULL};
  char **argv = argv0;
  if (g_args) {
    argv = g_args;
    argv[0] = (char *)g_prog;
  }
  char *envp[] = {"PATH=/bin:/usr/bin", NULL};
  execve(g_prog, argv, envp);
  die("execve");
  return 127;
}

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int write_file(const char *path, const char *s) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = write(fd, s, strlen(s));
  close(fd);
  return n == (ssize_t)strlen(s) ? 0 : -1;
}

static char *g_stack;
static size_t g_stack_sz = 256 * 1024;
static int g_vfork;

static double spawn_once(void) {
  struct child_arg a = {.syncfd = -1};
  int pfd[2] = {-1, -1};
  double t0 = now_us();
  if (g_user) {
    if (pipe2(pfd, O_CLOEXEC)) die("pipe");
    a.syncfd = pfd[0];
  }
  int cf = g_flags | SIGCHLD | (g_vfork ? (CLONE_VM | CLONE_VFORK) : 0);
  pid_t pid = clone(child_fn, g_stack + g_stack_sz, cf, &a);
  if (pid < 0) die("clone");
  if (g_user) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/uid_map", pid);
    if (write_file(path, "0 0 1\n")) die("uid_map");
    snprintf(path, sizeof path, "/proc/%d/setgroups", pid);
    write_file(path, "deny\n");
    snprintf(path, sizeof path, "/proc/%d/gid_map", pid);
    if (write_file(path, "0 0 1\n")) die("gid_map");
    if (write(pfd[1], "x", 1) != 1) die("sync");
    close(pfd[0]);
    close(pfd[1]);
  }
  int st;
  if (waitpid(pid, &st, 0) != pid) die("waitpid");
  double t1 = now_us();
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "child failed: status 0x%x\n", st);
    exit(1);
  }
  return t1 - t0;
}

static int cmpd(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static int parse_flags(const char *s) {
  if (!strcmp(s, "none") || !*s) return 0;
  int f = 0;
  char *d = strdup(s), *save = NULL;
  for (char *t = strtok_r(d, ",+", &save); t; t = strtok_r(NULL, ",+", &save)) {
    if (!strcmp(t, "uts")) f |= CLONE_NEWUTS;
    else if (!strcmp(t, "pid")) f |= CLONE_NEWPID;
    else if (!strcmp(t, "ipc")) f |= CLONE_NEWIPC;
    else if (!strcmp(t, "ns") || !strcmp(t, "mnt")) f |= CLONE_NEWNS;
    else if (!strcmp(t, "net")) f |= CLONE_NEWNET;
    else if (!strcmp(t, "user")) f |= CLONE_NEWUSER;
    else if (!strcmp(t, "cgroup")) f |= CLONE_NEWCGROUP;
    else { fprintf(stderr, "unknown ns %s\n", t); exit(2); }
  }
  free(d);
  return f;
}

static void stats(const char *flags, double *v, int n, int quiet, double wall, long total) {
  double sum = 0;
  for (int i = 0; i < n; i++) sum += v[i];
  qsort(v, n, sizeof *v, cmpd);
  printf("FLOOR flags=%s%s%s n=%d mean_us=%.1f median_us=%.1f p10_us=%.1f p90_us=%.1f min_us=%.1f max_us=%.1f",
         flags, g_root ? "+rootfs" : (g_proc_only ? "+proc" : ""), g_vfork ? "+vfork" : "", n, sum / n, v[n / 2], v[n / 10],
         v[(n * 9) / 10], v[0], v[n - 1]);
  if (wall > 0) printf(" total=%ld wall_s=%.3f rate_per_s=%.1f", total, wall, total / wall);
  printf("\n");
  (void)quiet;
}

int main(int argc, char **argv) {
  int n = 1000, w = 20, jobs = 0, quiet = 0;
  const char *flags = "uts,pid,ipc,ns";
  int o;
  while ((o = getopt(argc, argv, "n:w:f:r:x:j:vqp")) != -1) {
    switch (o) {
      case 'n': n = atoi(optarg); break;
      case 'w': w = atoi(optarg); break;
      case 'f': flags = optarg; break;
      case 'r': g_root = optarg; break;
      case 'x': g_prog = optarg; break;
      case 'j': jobs = atoi(optarg); break;
      case 'v': g_vfork = 1; break;
      case 'q': quiet = 1; break;
      case 'p': g_proc_only = 1; break;
      default: fprintf(stderr, "see source for usage\n"); return 2;
    }
  }
  if (optind < argc) g_args = &argv[optind - 1]; // argv[optind-1] is overwritten with the program
  g_flags = parse_flags(flags);
  g_user = !!(g_flags & CLONE_NEWUSER);
  if (g_vfork && g_user) { fprintf(stderr, "-v incompatible with user\n"); return 2; }
  if (g_root && !(g_flags & CLONE_NEWNS)) { fprintf(stderr, "-r needs ns\n"); return 2; }
  g_stack = mmap(NULL, g_stack_sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (g_stack == MAP_FAILED) die("mmap");

  if (jobs <= 0) {
    for (int i = 0; i < w; i++) spawn_once();
    double *v = calloc(n, sizeof *v);
    for (int i = 0; i < n; i++) v[i] = spawn_once();
    stats(flags, v, n, quiet, 0, 0);
    return 0;
  }
  // throughput mode
  for (int i = 0; i < w; i++) spawn_once();
  int per = n / jobs;
  int rp[2];
  if (pipe(rp)) die("pipe");
  double t0 = now_us();
  for (int j = 0; j < jobs; j++) {
    pid_t p = fork();
    if (p < 0) die("fork");
    if (p == 0) {
      double *v = calloc(per, sizeof *v);
      for (int i = 0; i < per; i++) v[i] = spawn_once();
      if (j == 0) {
        double t = now_us();
        (void)t;
        // pass worker-0 latencies back via stdout-free pipe? simpler: print median to pipe
        qsort(v, per, sizeof *v, cmpd);
        double med = v[per / 2];
        if (write(rp[1], &med, sizeof med) != sizeof med) _exit(1);
      }
      _exit(0);
    }
  }
  int st, bad = 0;
  for (int j = 0; j < jobs; j++) {
    wait(&st);
    if (!WIFEXITED(st) || WEXITSTATUS(st)) bad = 1;
  }
  double wall = (now_us() - t0) / 1e6;
  double med = 0;
  if (read(rp[0], &med, sizeof med) != sizeof med) med = -1;
  printf("FLOOR flags=%s%s%s jobs=%d total=%d wall_s=%.3f rate_per_s=%.1f worker0_median_us=%.1f%s\n", flags,
         g_root ? "+rootfs" : "", g_vfork ? "+vfork" : "", jobs, per * jobs, wall, per * jobs / wall, med,
         bad ? " ERRORS" : "");
  return bad;
}

/*
 * sandbox-init: the built-in init, PID 1 of a sandbox.
 *
 * Built by sandbox-core's build.rs as a tiny static, freestanding executable (no libc, raw
 * system calls), embedded in the library, and executed from a sealed memfd by the sandbox's
 * first process once its namespaces and mounts are in place. Being an executable of its own
 * (rather than a fork of the caller) it starts in a fresh, few-page memory image: it holds
 * nothing of the embedding application, and starting it costs one small exec.
 *
 * usage: sandbox-init STATUS_FD SYNC_FD FLAGS EXEC_STAGE PROGRAM [ARGS...]
 *        sandbox-init STATUS_FD SYNC_FD FLAGS|4 EXEC_STAGE CTL_FD FDS_STAGE
 *   STATUS_FD  pipe to the parent: gets {"SBXS", wait status} when the program ends
 *   SYNC_FD    the sync channel: gets {"SBXE", EXEC_STAGE, errno, 0} if PROGRAM cannot be
 *              executed; closed by the execve of PROGRAM otherwise (the parent sees EOF)
 *   FLAGS      bit 0: be a child subreaper (not PID 1 of a namespace);
 *              bit 1: the program dies with the init (PR_SET_PDEATHSIG);
 *              bit 2: serve (a pooled sandbox): close SYNC_FD at once (the parent sees the
 *              sandbox ready), then wait on the socket CTL_FD for the program to run
 * The environment is passed to PROGRAM unchanged. Every signal arrives blocked.
 *
 * A request (serve) is one message on CTL_FD: a byte, and five descriptors (SCM_RIGHTS):
 * a memfd holding the program's strings, the request's own sync channel (as SYNC_FD
 * above), and the program's stdin, stdout and stderr. The memfd reads, in native order:
 *   u32 "SBXQ", u32 EXEC_STAGE, u32 CHDIR_STAGE, u32 argc, u32 envc, u32 offset of cwd,
 *   u32 nreset, u32 REUSE (0 or 1),
 *   u64 offsets of argv[0..argc], 0, of envp[0..envc], 0, of the directories to reset
 *   [0..nreset], 0, then the NUL-ended strings.
 * The end of file on CTL_FD before a request ends the init (the pool let the sandbox go).
 *
 * REUSE (a reused pool's sandbox): when the program ends, the init does not exit. It kills
 * every other process of its PID namespace and reaps them, removes every System V IPC
 * object, and sends {"SBXS", wait status, clean, 0} on CTL_FD (the run is over); then it
 * empties the directories to reset of what was not there before the first run (the mount
 * points there before it are left, any other makes the reset unclean; the directories'
 * modes, times and extended attributes are put back: `user.` and ACL ones removed, the
 * names of the rest compared, not their values),
 * checks its own settings, drains pending signals, and sends {"SBXR", clean, 0, 0} —
 * clean = 1 when all of it succeeded in time — then waits for the next request (or ends,
 * when either report was not clean).
 * A request that cannot be taken (its descriptors truncated by RLIMIT_NOFILE, a malformed
 * memfd) or stdio that cannot be placed is reported as {"SBXE", FDS_STAGE, errno, 2} on
 * the request's sync channel when it arrived.
 *
 * It forks PROGRAM, forwards SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to it,
 * reaps every process that ends, and when PROGRAM ends sends its wait status to the parent
 * and exits with its code (or 128 + its signal: PID 1 cannot die of a signal it raises).
 */

#include <asm/unistd.h>

typedef unsigned long size_t;
typedef long ssize_t;
typedef unsigned int u32;

#define SIGHUP 1
#define SIGINT 2
#define SIGQUIT 3
#define SIGKILL 9
#define SIGUSR1 10
#define SIGUSR2 12
#define SIGTERM 15
#define SIGCHLD 17
#define WNOHANG 1
#define WALL 0x40000000
#define PR_SET_PDEATHSIG 1
#define PR_SET_DUMPABLE 4
#define PR_SET_NAME 15
#define PR_SET_CHILD_SUBREAPER 36
#define F_SETFD 2
#define FD_CLOEXEC 1
#define EINTR 4
#define FLAG_SERVE 4
#define SEEK_END 2
#define PROT_RW 3
#define MAP_PRIVATE 2
#define SOL_SOCKET 1
#define SCM_RIGHTS 1
#define MSG_CMSG_CLOEXEC 0x40000000
#define MSG_CTRUNC 8
#define O_RDONLY 0
#define O_DIRECTORY 0200000
#define O_NOFOLLOW 0400000
#define O_CLOEXEC 02000000
#define AT_SYMLINK_NOFOLLOW 0x100
#define AT_REMOVEDIR 0x200
#define ECHILD 10
#define EAGAIN 11
#define IPC_RMID 0
#define HEADER 32
#define MAX_RESET 16
#define MAX_KEPT 256
#define MAX_DEPTH 32

#define FRAME_ERROR 0x53425845u  /* "SBXE" */
#define FRAME_EXIT 0x53425853u   /* "SBXS" */
#define FRAME_READY 0x53425852u  /* "SBXR" */
#define REQUEST 0x53425851u      /* "SBXQ" */

struct timespec {
  long sec;
  long nsec;
};
/* A directory entry as getdents64 gives it. */
struct linux_dirent64 {
  unsigned long ino;
  long off;
  unsigned short reclen;
  unsigned char type;
  char name[];
};

struct iovec {
  void *base;
  size_t len;
};
struct msghdr {
  void *name;
  int namelen;
  struct iovec *iov;
  size_t iovlen;
  void *control;
  size_t controllen;
  int flags;
};
struct cmsghdr {
  size_t len;
  int level;
  int type;
};

static long sys6(long n, long a, long b, long c, long d, long e, long f) {
#if defined(__x86_64__)
  long ret;
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
#elif defined(__aarch64__)
  register long x8 __asm__("x8") = n;
  register long x0 __asm__("x0") = a;
  register long x1 __asm__("x1") = b;
  register long x2 __asm__("x2") = c;
  register long x3 __asm__("x3") = d;
  register long x4 __asm__("x4") = e;
  register long x5 __asm__("x5") = f;
  __asm__ volatile("svc 0"
                   : "+r"(x0)
                   : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                   : "memory");
  return x0;
#else
#error "sandbox-init supports x86_64 and aarch64"
#endif
}

#define sys0(n) sys6(n, 0, 0, 0, 0, 0, 0)
#define sys1(n, a) sys6(n, (long)(a), 0, 0, 0, 0, 0)
#define sys2(n, a, b) sys6(n, (long)(a), (long)(b), 0, 0, 0, 0)
#define sys3(n, a, b, c) sys6(n, (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define sys4(n, a, b, c, d) sys6(n, (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)

static __attribute__((noreturn)) void leave(int code) {
  for (;;) sys1(__NR_exit_group, code);
}

static int num(const char *s) {
  int v = 0;
  while (*s >= '0' && *s <= '9') v = v * 10 + (*s++ - '0');
  return v;
}

static void send(int fd, u32 kind, u32 a, int b, u32 c, int words) {
  u32 frame[4];
  frame[0] = kind;
  frame[1] = a;
  frame[2] = (u32)b;
  frame[3] = c;
  const char *p = (const char *)frame;
  long left = words * 4;
  while (left > 0) {
    long n = sys3(__NR_write, fd, p, left);
    if (n == -EINTR) continue;
    if (n <= 0) return;
    p += n;
    left -= n;
  }
}

static const int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

/* What the forked program gets, and how its start is reported. */
struct run {
  char **prog;
  char **envp;
  const char *cwd; /* 0: stay */
  int sync_fd;
  int stdio[3]; /* -1: keep */
  u32 exec_stage;
  u32 chdir_stage;
  u32 fds_stage;
  /* Serve: the request's mapping, and what a reused sandbox resets after the program. */
  char *base;
  long size;
  int reuse;
  char **reset; /* nreset directories, then 0 */
};

struct child_args {
  const struct run *r;
  int flags;
  long me;
};

/* The program's side of the fork: its stdio, working directory, parent-death signal and
 * signal mask, then its execve (a failure is reported on the sync channel). */
static __attribute__((noreturn)) void child_main(void *p) {
  const struct child_args *a = p;
  const struct run *r = a->r;
  unsigned long none = 0;
  for (int i = 0; i < 3; i++) {
    /* The received descriptors are close-on-exec and above 2 (0-2 were open). */
    long e = r->stdio[i] >= 0 ? sys3(__NR_dup3, r->stdio[i], i, 0) : 0;
    if (e < 0) {
      send(r->sync_fd, FRAME_ERROR, r->fds_stage, (int)-e, 2, 4);
      leave(127);
    }
  }
  if (r->cwd) {
    long e = sys1(__NR_chdir, r->cwd);
    if (e < 0) {
      send(r->sync_fd, FRAME_ERROR, r->chdir_stage, (int)-e, 0, 4);
      leave(127);
    }
  }
  if (a->flags & 2) {
    sys2(__NR_prctl, PR_SET_PDEATHSIG, SIGKILL);
    /* The init may have died before the signal was armed. */
    if (sys0(__NR_getppid) != a->me) leave(127);
  }
  sys4(__NR_rt_sigprocmask, 2 /* SIG_SETMASK */, &none, 0, 8);
  long e = sys3(__NR_execve, r->prog[0], r->prog, r->envp);
  send(r->sync_fd, FRAME_ERROR, r->exec_stage, (int)-e, 0, 4);
  leave(127);
}

#if defined(__x86_64__)
#define CLONE_VM 0x100
#define CLONE_VFORK 0x4000
/* The child's stack: one child at a time uses it (we wait while it runs on it). */
static char child_stack[16384] __attribute__((aligned(16)));

/* Runs fn(arg) in a new process that shares our memory, on child_stack, as posix_spawn
 * does: no copy of our page tables; we resume once it has executed or exited
 * (CLONE_VFORK). Returns its pid, or -errno. */
static long clone_vm(void (*fn)(void *), void *arg) {
  void **sp = (void **)(child_stack + sizeof child_stack);
  *--sp = arg;
  *--sp = (void *)fn;
  long ret;
  register long r10 __asm__("r10") = 0;
  register long r8 __asm__("r8") = 0;
  __asm__ volatile(
      "syscall\n"
      "test %%rax, %%rax\n"
      "jnz 1f\n"
      /* The child, on child_stack: pop fn and arg, call, and never come back. */
      "xor %%ebp, %%ebp\n"
      "pop %%rax\n"
      "pop %%rdi\n"
      "call *%%rax\n"
      "hlt\n"
      "1:\n"
      : "=a"(ret)
      : "a"(__NR_clone), "D"((long)(CLONE_VM | CLONE_VFORK | SIGCHLD)), "S"(sp), "d"(0),
        "r"(r10), "r"(r8)
      : "rcx", "r11", "memory");
  return ret;
}
#endif

/* Starts the program (reporting a failed fork or exec on the sync channel) and returns its
 * pid, or leaves. */
static long start(const struct run *r, int flags, long me) {
  struct child_args a = {r, flags, me};
#if defined(__x86_64__)
  long pid = clone_vm(child_main, &a);
#else
  long pid = sys6(__NR_clone, SIGCHLD, 0, 0, 0, 0, 0);
  if (pid == 0) child_main(&a);
#endif
  if (pid < 0) {
    send(r->sync_fd, FRAME_ERROR, r->exec_stage, (int)-pid, 1, 4);
    leave(127);
  }
  return pid;
}

/* A request that cannot be taken: say why on its sync channel (when it came), and end. */
static __attribute__((noreturn)) void refuse(int sync, u32 stage, int err) {
  if (sync >= 0) send(sync, FRAME_ERROR, stage, err, 2, 4);
  leave(125);
}

/* Serve: wait for the one request of a pooled sandbox and read it into `r` (leaves on
 * end of file or a request that cannot be taken). The descriptors stay open until the
 * fork. */
static void receive(int ctl, struct run *r, int fds[5]) {
  char byte;
  struct iovec iov = {&byte, 1};
  long cbuf[8];
  struct msghdr m = {0, 0, &iov, 1, cbuf, sizeof cbuf, 0};
  long n;
  do n = sys3(__NR_recvmsg, ctl, &m, MSG_CMSG_CLOEXEC);
  while (n == -EINTR);
  if (n <= 0) leave(n == 0 ? 0 : 125);
  struct cmsghdr *c = (struct cmsghdr *)cbuf;
  int got = 0;
  if (m.controllen >= sizeof *c && c->level == SOL_SOCKET && c->type == SCM_RIGHTS &&
      c->len >= sizeof *c && c->len <= sizeof *c + 5 * sizeof(int))
    got = (int)((c->len - sizeof *c) / sizeof(int));
  const int *in = (const int *)(c + 1);
  for (int i = 0; i < 5; i++) fds[i] = i < got ? in[i] : -1;
  /* Fewer than five: the open-files limit truncated them (MSG_CTRUNC). */
  if (got != 5 || (m.flags & MSG_CTRUNC)) refuse(fds[1], r->fds_stage, 24 /* EMFILE */);
  long size = sys3(__NR_lseek, fds[0], 0, SEEK_END);
  if (size < HEADER) refuse(fds[1], r->fds_stage, size < 0 ? (int)-size : 22 /* EINVAL */);
  char *base = (char *)sys6(__NR_mmap, 0, size, PROT_RW, MAP_PRIVATE, fds[0], 0);
  if ((unsigned long)base > -4096ul) refuse(fds[1], r->fds_stage, (int)-(long)base);
  const u32 *h = (const u32 *)base;
  unsigned long argc = h[3], envc = h[4], nreset = h[6], slots = argc + envc + nreset + 3;
  if (base[size - 1] != 0 || h[0] != REQUEST || argc == 0 || h[5] >= (unsigned long)size ||
      nreset > MAX_RESET || HEADER + slots * 8 > (unsigned long)size)
    refuse(fds[1], r->fds_stage, 22 /* EINVAL */);
  unsigned long *slot = (unsigned long *)(base + HEADER);
  for (unsigned long i = 0; i < slots; i++) {
    int last = i == argc || i == argc + envc + 1 || i == slots - 1;
    if (last != (slot[i] == 0) || slot[i] >= (unsigned long)size)
      refuse(fds[1], r->fds_stage, 22 /* EINVAL */);
    if (slot[i]) slot[i] += (unsigned long)base;
  }
  r->prog = (char **)slot;
  r->envp = r->prog + argc + 1;
  r->cwd = base + h[5];
  r->sync_fd = fds[1];
  r->stdio[0] = fds[2];
  r->stdio[1] = fds[3];
  r->stdio[2] = fds[4];
  r->exec_stage = h[1];
  r->chdir_stage = h[2];
  r->reset = r->envp + envc + 1;
  r->reuse = h[7] == 1;
  r->base = base;
  r->size = size;
}


/* ---- A reused sandbox's reset (REUSE) ------------------------------------------------ */

#define SHM_STAT_ANY 15
#define SHM_INFO 14
#define MSG_STAT_ANY 13
#define MSG_INFO 12
#define SEM_STAT_ANY 20
#define SEM_INFO 19
#define STATX_BASIC 0x7ff
#define AT_EMPTY_PATH 0x1000
#define S_IFMT 0170000
#define S_IFDIR 0040000
#define S_IFREG 0100000
#define MAX_REMOVED 100000

/* What statx says of an entry (offsets of struct statx). */
struct meta {
  u32 uid, gid, mode, dev_major, dev_minor;
  int mount_root; /* STATX_ATTR_MOUNT_ROOT: the root of a mount (a bind may share the dev) */
  struct timespec times[2]; /* atime, mtime: as utimensat takes them */
};

static int meta_of(int dfd, const char *name, int flags, struct meta *m) {
  unsigned char b[256];
  long e = sys6(__NR_statx, dfd, (long)name, flags | AT_SYMLINK_NOFOLLOW, STATX_BASIC, (long)b, 0);
  if (e < 0) return -1;
  m->uid = *(u32 *)(b + 20);
  m->gid = *(u32 *)(b + 24);
  m->mode = *(unsigned short *)(b + 28);
  m->dev_major = *(u32 *)(b + 136);
  m->dev_minor = *(u32 *)(b + 140);
  unsigned long attrs = *(unsigned long *)(b + 8), known = *(unsigned long *)(b + 56);
  m->mount_root = (known & attrs & 0x2000) != 0;
  for (int i = 0; i < 2; i++) {
    const unsigned char *t = b + (i ? 112 : 64); /* stx_mtime, stx_atime */
    m->times[i].sec = *(const long *)t;
    m->times[i].nsec = *(const u32 *)(t + 8);
  }
  return 0;
}

/* Owner, type and mode alike. */
static int same_owner_mode(const struct meta *a, const struct meta *b) {
  return a->uid == b->uid && a->gid == b->gid && a->mode == b->mode;
}

/* The timestamps of an entry (of the directory `dfd`, or of `dfd` itself when `name` is 0)
 * back as `m` had them: the program owns the reset places and their kept entries, and
 * could otherwise leave data in their atime and mtime. */
static int set_times(int dfd, const char *name, const struct meta *m) {
  return sys4(__NR_utimensat, dfd, (long)name, (long)m->times, name ? AT_SYMLINK_NOFOLLOW : 0) < 0
             ? -1
             : 0;
}

/* The extended attributes of a reset directory (the program owns it and may set `user.`
 * ones, or a default ACL that the next run's files would inherit): those it may set are
 * removed, and what is left must be what the directory had before the first run. */
#define XATTRS 512
static char dir_xattrs[MAX_RESET][XATTRS];
static long dir_xattrs_len[MAX_RESET];

static int starts_with(const char *s, const char *prefix) {
  while (*prefix)
    if (*s++ != *prefix++) return 0;
  return 1;
}

static int clean_xattrs(int fd, int k) {
  char list[XATTRS];
  long n = sys3(__NR_flistxattr, fd, list, sizeof list);
  if (n < 0) return n == -95 /* EOPNOTSUPP */ && dir_xattrs_len[k] == 0;
  for (long i = 0; i < n;) {
    const char *name = list + i;
    long len = 0;
    while (i + len < n && name[len]) len++;
    if (starts_with(name, "user.") || starts_with(name, "system.posix_acl_"))
      if (sys2(__NR_fremovexattr, fd, name) < 0) return 0;
    i += len + 1;
  }
  n = sys3(__NR_flistxattr, fd, list, sizeof list);
  if (n != dir_xattrs_len[k]) return 0;
  for (long i = 0; i < n; i++)
    if (list[i] != dir_xattrs[k][i]) return 0;
  return 1;
}

/* The entries of the directories to reset before the first run (inode numbers, per
 * directory), and each directory's owner and mode. */
static unsigned long kept_ino[MAX_KEPT], kept_name[MAX_KEPT];
static int kept_dir[MAX_KEPT];
static struct meta kept_meta[MAX_KEPT];
static int nkept, snapped, snap_ok;
static struct meta dir_meta[MAX_RESET];

static int open_dir(int dfd, const char *name) {
  return (int)sys4(__NR_openat, dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
}

static int is_dot(const char *n) { return n[0] == '.' && (!n[1] || (n[1] == '.' && !n[2])); }

/* FNV-1a of a name: an entry is kept only under the name and inode it had. */
static unsigned long name_hash(const char *n) {
  unsigned long h = 14695981039346656037ul;
  while (*n) h = (h ^ (unsigned char)*n++) * 1099511628211ul;
  return h;
}

/* The index of a kept entry of reset directory `k` with this inode and name, or -1. */
static int kept(int k, unsigned long ino, const char *name) {
  unsigned long h = name_hash(name);
  for (int i = 0; i < nkept; i++)
    if (kept_dir[i] == k && kept_ino[i] == ino && kept_name[i] == h) return i;
  return -1;
}

static void snapshot(char **dirs) {
  snapped = 1;
  snap_ok = 1;
  for (int k = 0; dirs[k]; k++) {
    int fd = open_dir(-100 /* AT_FDCWD */, dirs[k]);
    if (fd < 0 || meta_of(fd, "", AT_EMPTY_PATH, &dir_meta[k]) < 0) {
      snap_ok = 0;
      if (fd >= 0) sys1(__NR_close, fd);
      continue;
    }
    dir_xattrs_len[k] = sys3(__NR_flistxattr, fd, dir_xattrs[k], XATTRS);
    if (dir_xattrs_len[k] == -95 /* EOPNOTSUPP */) dir_xattrs_len[k] = 0;
    if (dir_xattrs_len[k] < 0) snap_ok = 0;
    char buf[1024];
    long n;
    while ((n = sys3(__NR_getdents64, fd, buf, sizeof buf)) > 0) {
      for (long off = 0; off < n;) {
        struct linux_dirent64 *d = (struct linux_dirent64 *)(buf + off);
        off += d->reclen;
        if (is_dot(d->name)) continue;
        struct meta m;
        if (nkept == MAX_KEPT || meta_of(fd, d->name, 0, &m) < 0) {
          snap_ok = 0;
          break;
        }
        /* A file or directory there before the first run could carry a run's writes to
         * the next (only its name is kept): such a sandbox is not reused. Links, devices
         * and mount points (emptied on their own, or not at all) cannot. */
        int mount = m.mount_root || m.dev_major != dir_meta[k].dev_major ||
                    m.dev_minor != dir_meta[k].dev_minor;
        unsigned type = m.mode & S_IFMT;
        if (!mount && (type == S_IFDIR || type == S_IFREG)) snap_ok = 0;
        kept_dir[nkept] = k;
        kept_meta[nkept] = m;
        kept_name[nkept] = name_hash(d->name);
        kept_ino[nkept++] = d->ino;
      }
    }
    if (n < 0) snap_ok = 0;
    sys1(__NR_close, fd);
  }
}

/* Removes every entry of the directory `dfd` (on the device `dev`) but the kept ones (of
 * reset directory `k`; none below the top), counting against `budget`. Returns the kept
 * entries found, each with its owner and mode of before and its timestamps put back; -1
 * for anything else that cannot be removed (a mount point not kept, a kept entry changed,
 * an entry that cannot be read). */
static long empty(int dfd, const struct meta *dev, int depth, int k, long *budget) {
  for (int pass = 0; pass < 8; pass++) {
    long removed = 0, left = 0, n;
    char buf[1024];
    sys3(__NR_lseek, dfd, 0, 0);
    while ((n = sys3(__NR_getdents64, dfd, buf, sizeof buf)) > 0) {
      for (long off = 0; off < n;) {
        struct linux_dirent64 *d = (struct linux_dirent64 *)(buf + off);
        off += d->reclen;
        if (is_dot(d->name)) continue;
        struct meta m;
        if (meta_of(dfd, d->name, 0, &m) < 0) return -1;
        int mount =
            m.mount_root || m.dev_major != dev->dev_major || m.dev_minor != dev->dev_minor;
        int i = k >= 0 ? kept(k, d->ino, d->name) : -1;
        if (i >= 0) {
          if (!same_owner_mode(&m, &kept_meta[i])) return -1;
          /* (A mount point's times are its own filesystem's: not ours to set.) */
          if (!mount && set_times(dfd, d->name, &kept_meta[i]) < 0) return -1;
          left++;
          continue;
        }
        if (mount) return -1; /* not ours to empty, and not there before */
        if (--*budget < 0) return -1;
        if ((m.mode & S_IFMT) == S_IFDIR) {
          if (depth >= MAX_DEPTH) return -1;
          /* The program may have left it unreadable or unwritable: it is the owner. */
          sys4(__NR_fchmodat, dfd, d->name, 0700, 0);
          int sub = open_dir(dfd, d->name);
          if (sub < 0) return -1;
          long rest = empty(sub, dev, depth + 1, -1, budget);
          sys1(__NR_close, sub);
          if (rest != 0 || sys3(__NR_unlinkat, dfd, d->name, AT_REMOVEDIR) < 0) return -1;
        } else if (sys3(__NR_unlinkat, dfd, d->name, 0) < 0) {
          return -1;
        }
        removed++;
      }
    }
    if (n < 0) return -1;
    /* Removing while reading may skip entries: read again until nothing is removed. */
    if (removed == 0) return left;
  }
  return -1;
}

/* Empties the directories to reset of what the runs left; puts their modes back. */
static int reset_dirs(char **dirs) {
  if (!snap_ok) return 0;
  long budget = MAX_REMOVED;
  for (int k = 0; dirs[k]; k++) {
    int fd = open_dir(-100 /* AT_FDCWD */, dirs[k]);
    struct meta m;
    if (fd < 0) return 0;
    int ok = meta_of(fd, "", AT_EMPTY_PATH, &m) == 0 && m.uid == dir_meta[k].uid &&
             m.gid == dir_meta[k].gid && m.dev_major == dir_meta[k].dev_major &&
             m.dev_minor == dir_meta[k].dev_minor;
    if (ok && m.mode != dir_meta[k].mode) ok = sys2(__NR_fchmod, fd, dir_meta[k].mode & 07777) == 0;
    if (ok) sys2(__NR_fchmod, fd, (dir_meta[k].mode & 07777) | 0700);
    long left = ok ? empty(fd, &dir_meta[k], 0, k, &budget) : -1;
    if (left >= 0 && !clean_xattrs(fd, k)) left = -1;
    if (sys2(__NR_fchmod, fd, dir_meta[k].mode & 07777) < 0) left = -1;
    if (left >= 0 && set_times(fd, 0, &dir_meta[k]) < 0) left = -1;
    sys1(__NR_close, fd);
    long want = 0;
    for (int i = 0; i < nkept; i++) want += kept_dir[i] == k;
    /* Not exactly the entries of before: one was removed, renamed or replaced (and its
     * stand-in removed), or changed. */
    if (left != want) return 0;
  }
  return 1;
}

/* Removes every System V IPC object of the namespace (the creator may always), and checks
 * the kernel counts none left: shm_info.used_ids, msginfo.msgpool (MSG_INFO: queues),
 * seminfo.semusz (SEM_INFO: sets). Fails closed. */
static int ipc_clean(void) {
  static const long calls[3][4] = {
      {__NR_shmctl, SHM_INFO, SHM_STAT_ANY, 0},
      {__NR_msgctl, MSG_INFO, MSG_STAT_ANY, 0},
      {__NR_semctl, SEM_INFO, SEM_STAT_ANY, 7},
  };
  int buf[64];
  for (int c = 0; c < 3; c++) {
    long nr = calls[c][0];
    int sem = nr == __NR_semctl;
    for (int pass = 0;; pass++) {
      long max = sem ? sys4(nr, 0, 0, calls[c][1], buf) : sys3(nr, 0, calls[c][1], buf);
      if (max < 0) return 0;
      if (buf[calls[c][3]] == 0) break;
      if (pass == 3) return 0;
      for (long idx = 0; idx <= max; idx++) {
        long id = sem ? sys4(nr, idx, 0, calls[c][2], buf) : sys3(nr, idx, calls[c][2], buf);
        if (id < 0) continue;
        if (sem)
          sys4(nr, id, 0, IPC_RMID, 0);
        else
          sys3(nr, id, IPC_RMID, 0);
      }
    }
  }
  return 1;
}

/* What a run could change of the init itself (it shares the program's credentials), and
 * the next program would inherit: its rlimits, nice value, scheduling attributes
 * (sched_getattr: policy, priority, utilization clamps), CPU affinity, I/O priority, and
 * what its /proc files set (oom_score_adj, coredump_filter, its autogroup's nice). Read
 * before the first run; a reused sandbox whose init changed is not clean, nor one whose
 * settings could not be read. */
struct settings {
  unsigned long rlim[16][2];
  long nice, ioprio, failed;
  unsigned long affinity[16];
  unsigned long sched_attr[16];
  char proc[3][64];
};
static struct settings first_settings;

static void read_settings(struct settings *t) {
  unsigned char *all = (unsigned char *)t;
  for (unsigned long i = 0; i < sizeof *t; i++) all[i] = 0;
  for (int i = 0; i < 16; i++)
    if (sys4(__NR_prlimit64, 0, i, 0, t->rlim[i]) < 0) t->failed = 1;
  t->nice = sys2(__NR_getpriority, 0 /* PRIO_PROCESS */, 0);
  t->ioprio = sys2(__NR_ioprio_get, 1 /* IOPRIO_WHO_PROCESS */, 0);
  if (sys3(__NR_sched_getaffinity, 0, sizeof t->affinity, t->affinity) < 0) t->failed = 1;
  if (sys4(__NR_sched_getattr, 0, t->sched_attr, sizeof t->sched_attr, 0) < 0) t->failed = 1;
  static const char *const files[3] = {"/proc/self/oom_score_adj", "/proc/self/coredump_filter",
                                       "/proc/self/autogroup"};
  for (int i = 0; i < 3; i++) {
    int fd = (int)sys4(__NR_openat, -100 /* AT_FDCWD */, files[i], O_RDONLY | O_CLOEXEC, 0);
    /* (A kernel without autogroups has no such file: nothing to change there either.) */
    if (fd < 0) continue;
    if (sys3(__NR_read, fd, t->proc[i], sizeof t->proc[i] - 1) < 0) t->failed = 1;
    sys1(__NR_close, fd);
  }
}

static int same_settings(void) {
  struct settings now;
  read_settings(&now);
  const unsigned char *a = (const unsigned char *)&now, *b = (const unsigned char *)&first_settings;
  if (now.failed) return 0;
  for (unsigned long i = 0; i < sizeof now; i++)
    if (a[i] != b[i]) return 0;
  /* The init's own CPU time counts against the sandbox's RLIMIT_CPU: retire it at half. */
  long ru[18];
  sys2(__NR_getrusage, 0 /* RUSAGE_SELF */, ru);
  unsigned long used = (unsigned long)(ru[0] + ru[2]) * 1000000ul + (unsigned long)(ru[1] + ru[3]);
  unsigned long cpu = now.rlim[0][0]; /* RLIMIT_CPU soft, seconds */
  return cpu > 1000000000000ul || used * 2 < cpu * 1000000ul;
}

/* Consumes every pending signal (real-time ones a run queued on PID 1 included). */
static void drain_signals(void) {
  unsigned long every = ~0ul;
  struct timespec now = {0, 0};
  while (sys4(__NR_rt_sigtimedwait, &every, 0, &now, 8) > 0) {
  }
}

/* Kills every other process of the PID namespace and reaps them all (within ~0.5 s). */
static int reap_all(void) {
  unsigned long chld = 1ul << (SIGCHLD - 1);
  for (int round = 0; round < 20; round++) {
    sys2(__NR_kill, -1, SIGKILL);
    for (;;) {
      int st = 0;
      long w = sys4(__NR_wait4, -1, &st, WNOHANG | WALL, 0);
      if (w > 0) continue;
      if (w == -ECHILD) return 1;
      break;
    }
    struct timespec t = {0, 25000000};
    sys4(__NR_rt_sigtimedwait, &chld, 0, &t, 8);
  }
  return 0;
}

void cstart(long *sp) {
  long argc = sp[0];
  char **argv = (char **)(sp + 1);
  char **envp = argv + argc + 1;
  if (argc < 6) leave(125);
  int status_fd = num(argv[1]);
  int sync_fd = num(argv[2]);
  int flags = num(argv[3]);
  struct run r = {argv + 5, envp, 0, sync_fd, {-1, -1, -1}, (u32)num(argv[4]), 0, 0, 0, 0, 0, 0};

  /* Signals wait until we take them (they normally arrive blocked already). */
  unsigned long all = ~0ul;
  sys4(__NR_rt_sigprocmask, 2 /* SIG_SETMASK */, &all, 0, 8);
  /* Neither descriptor may reach the program; its exec closes the sync channel. */
  sys3(__NR_fcntl, status_fd, F_SETFD, FD_CLOEXEC);
  sys3(__NR_fcntl, sync_fd, F_SETFD, FD_CLOEXEC);
  sys2(__NR_prctl, PR_SET_NAME, "sandbox-init");
  /* Processes of the sandbox that are not root inside may not ptrace us. */
  sys2(__NR_prctl, PR_SET_DUMPABLE, 0);
  if (flags & 1) sys2(__NR_prctl, PR_SET_CHILD_SUBREAPER, 1);

  unsigned long set = 1ul << (SIGCHLD - 1);
  for (unsigned i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++) set |= 1ul << (forwarded[i] - 1);
  long me = sys0(__NR_getpid);
  int ctl = -1;
  if (flags & FLAG_SERVE) {
    if (argc < 7) leave(125);
    ctl = num(argv[5]);
    r.fds_stage = (u32)num(argv[6]);
    sys3(__NR_fcntl, ctl, F_SETFD, FD_CLOEXEC);
    /* Ready: the parent sees end of file on the sandbox's own sync channel. */
    sys1(__NR_close, sync_fd);
  }
  for (;;) {
    int fds[5] = {-1, -1, -1, -1, -1};
    if (ctl >= 0) {
      receive(ctl, &r, fds);
      /* Only a reused sandbox's init (PID 1 of its namespace) may kill(-1). */
      if (r.reuse && (flags & 1)) refuse(fds[1], r.fds_stage, 22 /* EINVAL */);
      if (r.reuse && !snapped) {
        snapshot(r.reset);
        read_settings(&first_settings);
      }
      /* Nothing sent to PID 1 before this run is this program's. */
      if (r.reuse) drain_signals();
    }
    long pid = start(&r, flags, me);
    /* The parent sees end-of-file once the program executes; hold none of its stdio. */
    sys1(__NR_close, r.sync_fd);
    for (int i = 0; i < 5; i++)
      if (fds[i] >= 0 && fds[i] != r.sync_fd) sys1(__NR_close, fds[i]);
    if (!r.reuse) {
      if (ctl >= 0) sys1(__NR_close, ctl);
      sys1(__NR_close, 0);
      sys1(__NR_close, 1);
      sys1(__NR_close, 2);
    }
    int st = -1;
    while (st < 0) {
      long sig = sys4(__NR_rt_sigtimedwait, &set, 0, 0, 8);
      if (sig == SIGCHLD) {
        for (;;) {
          int ws = 0;
          long w = sys4(__NR_wait4, -1, &ws, WNOHANG | WALL, 0);
          if (w <= 0) break;
          if (w == pid) st = ws;
        }
      } else if (sig > 0) {
        sys2(__NR_kill, pid, sig);
      }
    }
    if (!r.reuse) {
      send(status_fd, FRAME_EXIT, (u32)st, 0, 0, 2);
      if ((st & 0x7f) == 0) leave((st >> 8) & 0xff);
      leave(128 + (st & 0x7f));
    }
    /* Reused: nothing of this run may reach the next. The run is over once none of its
     * processes and IPC objects is left: reported then, so its caller need not wait for
     * the reset, which is reported next ({SBXR, clean}); only then is the sandbox lent
     * again. */
    int clean = reap_all();
    clean = ipc_clean() && clean;
    send(ctl, FRAME_EXIT, (u32)st, clean, 0, 4);
    if (!clean) leave(125);
    clean = reset_dirs(r.reset);
    /* (The request's strings, r.reset among them, live in its mapping.) */
    sys2(__NR_munmap, r.base, r.size);
    clean = same_settings() && clean;
    drain_signals();
    send(ctl, FRAME_READY, (u32)clean, 0, 0, 4);
    if (!clean) leave(125);
  }
}

#if defined(__x86_64__)
__asm__(".text\n.global _start\n_start:\n  xor %rbp, %rbp\n  mov %rsp, %rdi\n  and $-16, %rsp\n  call cstart\n  hlt\n");
#elif defined(__aarch64__)
__asm__(".text\n.global _start\n_start:\n  mov x29, #0\n  mov x30, #0\n  mov x0, sp\n  bl cstart\n  brk #0\n");
#endif

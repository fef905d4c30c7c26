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
 *   u64 offsets of argv[0..argc], 0, of envp[0..envc], 0, then the NUL-ended strings.
 * The end of file on CTL_FD before a request ends the init (the pool let the sandbox go).
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

#define FRAME_ERROR 0x53425845u  /* "SBXE" */
#define FRAME_EXIT 0x53425853u   /* "SBXS" */
#define REQUEST 0x53425851u      /* "SBXQ" */

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
};

/* Forks the program (reporting a failed fork or exec on the sync channel) and returns its
 * pid, or leaves. */
static long start(const struct run *r, int flags, long me) {
  long pid = sys6(__NR_clone, SIGCHLD, 0, 0, 0, 0, 0);
  if (pid < 0) {
    send(r->sync_fd, FRAME_ERROR, r->exec_stage, (int)-pid, 1, 4);
    leave(127);
  }
  if (pid == 0) {
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
    if (flags & 2) {
      sys2(__NR_prctl, PR_SET_PDEATHSIG, SIGKILL);
      /* The init may have died before the signal was armed. */
      if (sys0(__NR_getppid) != me) leave(127);
    }
    sys4(__NR_rt_sigprocmask, 2 /* SIG_SETMASK */, &none, 0, 8);
    long e = sys3(__NR_execve, r->prog[0], r->prog, r->envp);
    send(r->sync_fd, FRAME_ERROR, r->exec_stage, (int)-e, 0, 4);
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
  sys1(__NR_close, ctl);
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
  if (size < 24) refuse(fds[1], r->fds_stage, size < 0 ? (int)-size : 22 /* EINVAL */);
  char *base = (char *)sys6(__NR_mmap, 0, size, PROT_RW, MAP_PRIVATE, fds[0], 0);
  if ((unsigned long)base > -4096ul) refuse(fds[1], r->fds_stage, (int)-(long)base);
  const u32 *h = (const u32 *)base;
  unsigned long argc = h[3], envc = h[4], slots = argc + envc + 2;
  if (base[size - 1] != 0 || h[0] != REQUEST || argc == 0 || h[5] >= (unsigned long)size ||
      24 + slots * 8 > (unsigned long)size)
    refuse(fds[1], r->fds_stage, 22 /* EINVAL */);
  unsigned long *slot = (unsigned long *)(base + 24);
  for (unsigned long i = 0; i < slots; i++) {
    int last = i == argc || i == slots - 1;
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
}

void cstart(long *sp) {
  long argc = sp[0];
  char **argv = (char **)(sp + 1);
  char **envp = argv + argc + 1;
  if (argc < 6) leave(125);
  int status_fd = num(argv[1]);
  int sync_fd = num(argv[2]);
  int flags = num(argv[3]);
  struct run r = {argv + 5, envp, 0, sync_fd, {-1, -1, -1}, (u32)num(argv[4]), 0, 0};

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

  int fds[5] = {-1, -1, -1, -1, -1};
  if (flags & FLAG_SERVE) {
    if (argc < 7) leave(125);
    int ctl = num(argv[5]);
    r.fds_stage = (u32)num(argv[6]);
    sys3(__NR_fcntl, ctl, F_SETFD, FD_CLOEXEC);
    /* Ready: the parent sees end of file on the sandbox's own sync channel. */
    sys1(__NR_close, sync_fd);
    receive(ctl, &r, fds);
  }

  long me = sys0(__NR_getpid);
  long pid = start(&r, flags, me);
  /* The parent sees end-of-file once the program executes; hold none of its stdio. */
  sys1(__NR_close, r.sync_fd);
  for (int i = 0; i < 5; i++)
    if (fds[i] >= 0 && fds[i] != r.sync_fd) sys1(__NR_close, fds[i]);
  sys1(__NR_close, 0);
  sys1(__NR_close, 1);
  sys1(__NR_close, 2);

  unsigned long set = 1ul << (SIGCHLD - 1);
  for (unsigned i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++) set |= 1ul << (forwarded[i] - 1);
  for (;;) {
    long sig = sys4(__NR_rt_sigtimedwait, &set, 0, 0, 8);
    if (sig == SIGCHLD) {
      for (;;) {
        int st = 0;
        long w = sys4(__NR_wait4, -1, &st, WNOHANG | WALL, 0);
        if (w <= 0) break;
        if (w == pid) {
          send(status_fd, FRAME_EXIT, (u32)st, 0, 0, 2);
          if ((st & 0x7f) == 0) leave((st >> 8) & 0xff);
          leave(128 + (st & 0x7f));
        }
      }
    } else if (sig > 0) {
      sys2(__NR_kill, pid, sig);
    }
  }
}

#if defined(__x86_64__)
__asm__(".text\n.global _start\n_start:\n  xor %rbp, %rbp\n  mov %rsp, %rdi\n  and $-16, %rsp\n  call cstart\n  hlt\n");
#elif defined(__aarch64__)
__asm__(".text\n.global _start\n_start:\n  mov x29, #0\n  mov x30, #0\n  mov x0, sp\n  bl cstart\n  brk #0\n");
#endif

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
 *   STATUS_FD  pipe to the parent: gets {"SBXS", wait status} when the program ends
 *   SYNC_FD    the sync channel: gets {"SBXE", EXEC_STAGE, errno, 0} if PROGRAM cannot be
 *              executed; closed by the execve of PROGRAM otherwise (the parent sees EOF)
 *   FLAGS      bit 0: be a child subreaper (not PID 1 of a namespace);
 *              bit 1: the program dies with the init (PR_SET_PDEATHSIG)
 * The environment is passed to PROGRAM unchanged. Every signal arrives blocked.
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

#define FRAME_ERROR 0x53425845u  /* "SBXE" */
#define FRAME_EXIT 0x53425853u   /* "SBXS" */

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

void cstart(long *sp) {
  long argc = sp[0];
  char **argv = (char **)(sp + 1);
  char **envp = argv + argc + 1;
  if (argc < 6) leave(125);
  int status_fd = num(argv[1]);
  int sync_fd = num(argv[2]);
  int flags = num(argv[3]);
  u32 exec_stage = (u32)num(argv[4]);
  char **prog = argv + 5;

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

  long me = sys0(__NR_getpid);
  long pid = sys6(__NR_clone, SIGCHLD, 0, 0, 0, 0, 0);
  if (pid < 0) {
    send(sync_fd, FRAME_ERROR, exec_stage, (int)-pid, 1, 4);
    leave(127);
  }
  if (pid == 0) {
    unsigned long none = 0;
    if (flags & 2) {
      sys2(__NR_prctl, PR_SET_PDEATHSIG, SIGKILL);
      /* The init may have died before the signal was armed. */
      if (sys0(__NR_getppid) != me) leave(127);
    }
    sys4(__NR_rt_sigprocmask, 2 /* SIG_SETMASK */, &none, 0, 8);
    long e = sys3(__NR_execve, prog[0], prog, envp);
    send(sync_fd, FRAME_ERROR, exec_stage, (int)-e, 0, 4);
    leave(127);
  }
  /* The parent sees end-of-file once the program executes; hold none of its stdio. */
  sys1(__NR_close, sync_fd);
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
        long r = sys4(__NR_wait4, -1, &st, WNOHANG | WALL, 0);
        if (r <= 0) break;
        if (r == pid) {
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

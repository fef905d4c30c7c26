/*
 * attacks: one escape attempt per run, for the escape tests (tests/escape_*.rs and
 * tests/security_settings.rs; their helpers are in tests/common/escape.rs).
 *
 * usage: attacks NAME [ARGS...]
 * Prints "blocked NAME ERRNO-NAME" and exits 0 when the attempt failed with an error, or
 * "ESCAPED NAME ..." and exits 1 when it worked. The test checks the errno it expects and,
 * where it can, the host's side too.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *name;

static const char *errname(int e) {
  switch (e) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EBADF: return "EBADF";
    case EACCES: return "EACCES";
    case EROFS: return "EROFS";
    case ENOSYS: return "ENOSYS";
    case EINVAL: return "EINVAL";
    case EIO: return "EIO";
    case ENOTTY: return "ENOTTY";
    case EXDEV: return "EXDEV";
    case ECONNREFUSED: return "ECONNREFUSED";
    case ENOKEY: return "ENOKEY";
    default: {
      static char buf[32];
      snprintf(buf, sizeof buf, "errno%d", e);
      return buf;
    }
  }
}

/* The call returned r (with errno): report. */
static int report(long r) {
  if (r < 0) {
    printf("blocked %s %s\n", name, errname(errno));
    return 0;
  }
  printf("ESCAPED %s %ld\n", name, r);
  return 1;
}

static int hex(char c) { return c <= '9' ? c - '0' : (c | 32) - 'a' + 10; }

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  name = argv[1];
  const char *a = argc > 2 ? argv[2] : "";
  setvbuf(stdout, NULL, _IONBF, 0);

  if (!strcmp(name, "open")) return report(open(a, O_RDONLY));
  if (!strcmp(name, "dotdot")) {
    /* Climb far above the root, then down to the canary. */
    char path[4096] = "";
    for (int i = 0; i < 64; i++) strcat(path, "../");
    strcat(path, a[0] == '/' ? a + 1 : a);
    if (chdir("/tmp") < 0) return 2;
    return report(open(path, O_RDONLY));
  }
  if (!strcmp(name, "proc-root")) {
    /* ARGS: path, and the process whose root to go through (default 1, the init). */
    char path[4096];
    snprintf(path, sizeof path, "/proc/%s/root%s", argc > 3 ? argv[3] : "1", a);
    return report(open(path, O_RDONLY));
  }
  if (!strcmp(name, "proc-self-root")) {
    char path[4096];
    snprintf(path, sizeof path, "/proc/self/root/../../..%s", a);
    return report(open(path, O_RDONLY));
  }
  if (!strcmp(name, "open-by-handle")) {
    /* ARGS: handle type, handle bytes in hex (computed on the host for the canary). */
    struct {
      struct file_handle h;
      unsigned char bytes[128];
    } fh;
    const char *b = argc > 3 ? argv[3] : "";
    fh.h.handle_type = atoi(a);
    fh.h.handle_bytes = strlen(b) / 2;
    for (unsigned i = 0; i < fh.h.handle_bytes && i < 128; i++)
      fh.h.f_handle[i] = hex(b[2 * i]) << 4 | hex(b[2 * i + 1]);
    int root = open("/", O_RDONLY | O_DIRECTORY);
    return report(open_by_handle_at(root, &fh.h, O_RDONLY));
  }
  if (!strcmp(name, "name-to-handle")) {
    struct {
      struct file_handle h;
      unsigned char bytes[128];
    } fh;
    int mount_id;
    fh.h.handle_bytes = 128;
    return report(name_to_handle_at(AT_FDCWD, "/etc", &fh.h, &mount_id, 0));
  }
  if (!strcmp(name, "kill")) return report(kill(atoi(a), argc > 3 ? atoi(argv[3]) : SIGKILL));
  if (!strcmp(name, "ptrace-attach")) {
    pid_t pid = atoi(a);
    long r = ptrace(PTRACE_ATTACH, pid, 0, 0);
    if (r == 0) {
      /* Let it go again at once. */
      waitpid(pid, NULL, __WALL);
      ptrace(PTRACE_DETACH, pid, 0, 0);
    }
    return report(r);
  }
  if (!strcmp(name, "ptrace-child")) {
    /* A process of the sandbox's own. */
    pid_t pid = fork();
    if (pid == 0) {
      pause();
      _exit(0);
    }
    long r = ptrace(PTRACE_ATTACH, pid, 0, 0);
    int e = errno;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    errno = e;
    return report(r);
  }
  if (!strcmp(name, "count-processes")) {
    /* Every process this one can see: its own sandbox's only. */
    int n = 0;
    for (int pid = 1; pid < 4194304 && pid < 100000; pid++) {
      if (kill(pid, 0) == 0 || errno == EPERM) n++;
    }
    printf("visible %d\n", n);
    return 0;
  }
  if (!strcmp(name, "mount")) return report(mount("none", "/tmp", "tmpfs", 0, NULL));
  if (!strcmp(name, "remount-root-rw"))
    return report(mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND, NULL));
  if (!strcmp(name, "umount")) return report(umount2(a[0] ? a : "/proc/kcore", MNT_DETACH));
  if (!strcmp(name, "pivot-root")) {
    const char *d = a[0] ? a : "/tmp";
    return report(syscall(SYS_pivot_root, d, d));
  }
  if (!strcmp(name, "unshare-user")) return report(unshare(CLONE_NEWUSER));
  if (!strcmp(name, "unshare-mount")) return report(unshare(CLONE_NEWNS));
  if (!strcmp(name, "clone-newuser")) {
    long r = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (r == 0) _exit(0);
    if (r > 0) waitpid(r, NULL, 0);
    return report(r);
  }
  if (!strcmp(name, "clone3")) {
    struct {
      unsigned long long flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size,
          tls;
    } args = {0};
    args.flags = CLONE_NEWUSER;
    args.exit_signal = SIGCHLD;
    long r = syscall(435 /* clone3 */, &args, sizeof args);
    if (r == 0) _exit(0);
    if (r > 0) waitpid(r, NULL, 0);
    return report(r);
  }
  if (!strcmp(name, "setns")) {
    int fd = open("/proc/self/ns/net", O_RDONLY);
    return report(setns(fd, 0));
  }
  if (!strcmp(name, "chroot")) return report(chroot("/tmp"));
  if (!strcmp(name, "mknod"))
    return report(mknod(a[0] ? a : "/tmp/disk", S_IFBLK | 0600, makedev(8, 0)));
  if (!strcmp(name, "create")) return report(open(a, O_CREAT | O_WRONLY, 0644));
  if (!strcmp(name, "write")) {
    int fd = open(a, O_WRONLY);
    if (fd < 0) return report(fd);
    const char *text = argc > 3 ? argv[3] : "1";
    return report(write(fd, text, strlen(text)));
  }
  if (!strcmp(name, "cgroup-mount")) {
    mkdir("/tmp/cg", 0700);
    return report(mount("cgroup", "/tmp/cg", "cgroup", 0, "memory"));
  }
  if (!strcmp(name, "tiocsti")) {
    char c = 'x';
    return report(ioctl(0, TIOCSTI, &c));
  }
  if (!strcmp(name, "tiocsti-high-bits")) {
    /* The request is an int: the kernel ignores the upper 32 bits. */
    char c = 'x';
    return report(syscall(SYS_ioctl, 0, 0x100000000UL | TIOCSTI, &c));
  }
  if (!strcmp(name, "fd")) {
    char buf[8];
    return report(read(atoi(a), buf, sizeof buf));
  }
  if (!strcmp(name, "write-fd")) {
    const char *text = argc > 3 ? argv[3] : "hello";
    return report(write(atoi(a), text, strlen(text)));
  }
  if (!strcmp(name, "list-fds")) {
    /* Every descriptor open above stderr, by probing. */
    int any = 0;
    for (int fd = 3; fd < 4096; fd++) {
      if (fcntl(fd, F_GETFD) >= 0) {
        printf("open %d\n", fd);
        any = 1;
      }
    }
    return any;
  }
  /* The process keyring: made for this process, gone with it. */
  if (!strcmp(name, "keyctl"))
    return report(syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -2 /* process */, 1 /* create */));
  if (!strcmp(name, "add-key"))
    return report(syscall(SYS_add_key, "user", "k", "v", 1, -2 /* process */));
  if (!strcmp(name, "bpf")) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.map_type = BPF_MAP_TYPE_ARRAY;
    attr.key_size = 4;
    attr.value_size = 4;
    attr.max_entries = 1;
    return report(syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr));
  }
  if (!strcmp(name, "perf-event-open")) {
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.size = sizeof attr;
    attr.type = PERF_TYPE_SOFTWARE;
    attr.config = PERF_COUNT_SW_CPU_CLOCK;
    return report(syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0));
  }
  if (!strcmp(name, "userfaultfd")) return report(syscall(SYS_userfaultfd, 0));
  if (!strcmp(name, "io-uring")) {
    char params[120];
    memset(params, 0, sizeof params);
    return report(syscall(425 /* io_uring_setup */, 4, params));
  }
  if (!strcmp(name, "settimeofday")) {
    /* Neither a time nor a zone: the kernel checks the right to set the clock and
       changes nothing, so the control run on the host is harmless. */
    return report(syscall(SYS_settimeofday, NULL, NULL));
  }
  if (!strcmp(name, "clock-settime")) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return report(clock_settime(CLOCK_REALTIME, &ts));
  }
  if (!strcmp(name, "sethostname")) return report(sethostname(a, strlen(a)));
  if (!strcmp(name, "personality")) return report(personality(READ_IMPLIES_EXEC));
  if (!strcmp(name, "x32")) return report(syscall(0x40000000 | SYS_getpid));
  if (!strcmp(name, "reboot")) return report(syscall(SYS_reboot, 0xfee1dead, 672274793, 0x4321fedc, 0));
  if (!strcmp(name, "init-module")) return report(syscall(SYS_init_module, "", 0, ""));
  if (!strcmp(name, "raw-socket")) return report(socket(2 /* AF_INET */, 3 /* SOCK_RAW */, 1));
  if (!strcmp(name, "raise-rlimit")) {
    /* Lower the hard limit (anyone may), then raise it back (only CAP_SYS_RESOURCE may). */
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_max -= 1;
    if (rl.rlim_cur > rl.rlim_max) rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) return 2;
    rl.rlim_max += 1;
    return report(setrlimit(RLIMIT_NOFILE, &rl));
  }
  if (!strcmp(name, "tcp-connect")) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(atoi(a));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return report(connect(fd, (struct sockaddr *)&sa, sizeof sa));
  }
  if (!strcmp(name, "abstract-connect")) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {0};
    sa.sun_family = AF_UNIX;
    size_t n = strlen(a);
    memcpy(sa.sun_path + 1, a, n);
    return report(connect(fd, (struct sockaddr *)&sa, offsetof(struct sockaddr_un, sun_path) + 1 + n));
  }
  if (!strcmp(name, "setuid-gain")) {
    /* Exec a set-uid-root copy of ourselves? no_new_privs: the bit is ignored. Report the
       capabilities this process has instead (all zero). */
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
      if (!strncmp(line, "Cap", 3) || !strncmp(line, "NoNewPrivs", 10) ||
          !strncmp(line, "Seccomp:", 8))
        fputs(line, stdout);
    return 0;
  }
  fprintf(stderr, "unknown attack %s\n", name);
  return 2;
}

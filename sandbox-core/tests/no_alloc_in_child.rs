//! The child between `clone3` and `execve` (and the init and relay, which never execute
//! anything) must not allocate: it is a copy of a multi-threaded process whose allocator
//! locks may be held by threads that do not exist in it.
//!
//! This binary's global allocator counts every allocation made by a process other than the
//! test process itself (by pid) in a shared page, which children inherit and `execve`
//! leaves behind. Every spawn path runs below; the count must stay 0. A control fork that
//! does allocate proves the counter works.
mod common;
use sandbox_core::{Clock, Command, Mount, Namespace, Rootfs, Sandbox, Stdio};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicUsize, Ordering};
use std::time::Duration;

struct Counting;

static MAIN_PID: AtomicI32 = AtomicI32::new(0);
static SHARED: AtomicPtr<AtomicUsize> = AtomicPtr::new(std::ptr::null_mut());

fn note() {
    let main = MAIN_PID.load(Ordering::Relaxed);
    if main == 0 {
        return;
    }
    // SAFETY: getpid has no arguments and cannot fail.
    let pid = unsafe { libc::syscall(libc::SYS_getpid) } as i32;
    if pid != main {
        let p = SHARED.load(Ordering::Relaxed);
        if !p.is_null() {
            // SAFETY: `p` points into a shared page mapped for the life of the process.
            unsafe { (*p).fetch_add(1, Ordering::SeqCst) };
        }
    }
}

// SAFETY: forwards to the system allocator; the counting has no effect on the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        note();
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        note();
        // SAFETY: same contract as ours.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn setup() {
    // SAFETY: anonymous shared mapping of one page; checked below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    SHARED.store(p.cast(), Ordering::SeqCst);
    // SAFETY: as in `note`.
    MAIN_PID.store(
        unsafe { libc::syscall(libc::SYS_getpid) } as i32,
        Ordering::SeqCst,
    );
}

fn count() -> usize {
    // SAFETY: set up in `setup`, never unmapped.
    unsafe { (*SHARED.load(Ordering::SeqCst)).load(Ordering::SeqCst) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_allocation_between_clone_and_exec() {
    common::require_root();
    setup();
    let root = tempfile::tempdir().unwrap();
    common::mini_rootfs(root.path(), &["/bin/sh", "/bin/cat"]);

    // The plain path: init, hostname, loopback, fresh /proc, piped stdio, environment.
    let mut c = Sandbox::new().hostname("alloc").command("/bin/sh");
    c.arg("-c")
        .arg("cat > /dev/null; echo done")
        .env("A", "b")
        .current_dir("/tmp")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = c.spawn().await.unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().await.unwrap();
    assert_eq!(out.stdout, b"done\n");
    // Without init; a directory root entered with pivot_root (its /dev steps too); clock
    // offsets; no network; shared namespaces.
    for s in [
        Sandbox::new().init(false),
        Sandbox::new().rootfs(Rootfs::dir(root.path())),
        // Every kind of new root and every kind of mount (resolved by fd in the child).
        Sandbox::new()
            .rootfs(Rootfs::host_readonly())
            .mount(Mount::bind("/etc/os-release", "/data/os").readonly())
            .mount(Mount::tmpfs("/scratch").size(1 << 20).mode(0o700))
            .mount(Mount::file("/sub/main.c", "int main;"))
            .mount(Mount::symlink("/tmp/link", "/data"))
            .mount(Mount::dir("/a/b/c"))
            .mount(Mount::proc("/proc2"))
            .mount(Mount::sysfs("/sys2")),
        Sandbox::new().rootfs(Rootfs::overlay([root.path()])),
        Sandbox::new().mount(Mount::tmpfs("/mnt")),
        Sandbox::new().time_offset(Clock::Monotonic, 1000),
        Sandbox::new().network(sandbox_core::Network::none()),
        Sandbox::new().share(Namespace::User).share(Namespace::Pid),
        // Hardening: a kept capability, landlock rules, a profile with extra rules.
        Sandbox::new()
            .capability(sandbox_core::Capability::NetRaw)
            .landlock(
                sandbox_core::Landlock::new()
                    .read_only("/usr")
                    .read_only("/bin")
                    .read_only("/lib")
                    .read_only("/lib64")
                    .read_only("/etc/passwd")
                    .read_write("/tmp"),
            )
            .seccomp(
                sandbox_core::Seccomp::default_profile()
                    .allow("ptrace")
                    .deny("acct"),
            ),
    ] {
        let o = common::shell_status(&s, "true").await;
        assert!(o.success(), "{s:?}");
    }
    // Descriptors passed on purpose, placed just before the exec.
    let (_r, w) = nix::unistd::pipe().unwrap();
    let mut c = Sandbox::new().command("/bin/sh");
    c.arg("-c")
        .arg("true")
        .pass_fd(3, w.try_clone().unwrap())
        .pass_fd(9, w);
    assert!(c.status().await.unwrap().success());
    // Error paths: a missing program, a failing mount step.
    Sandbox::new()
        .command("/no/such")
        .status()
        .await
        .unwrap_err();
    // The relay paths: exec into a running sandbox, and joining a namespace.
    let mut long = Sandbox::new()
        .command("/bin/sleep")
        .arg("100")
        .spawn()
        .await
        .unwrap();
    let out = long.exec(&Command::new("/bin/true")).await.unwrap();
    drop(out);
    let uts = format!("/proc/{}/ns/uts", long.id().unwrap());
    let o = Sandbox::new()
        .join(Namespace::Uts, &uts)
        .command("/bin/true")
        .status()
        .await
        .unwrap();
    assert!(o.success());
    long.kill().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(count(), 0, "allocations in a sandbox's child before exec");

    // Control: a forked process that allocates is counted.
    // SAFETY: the child only allocates (glibc's fork resets malloc's locks) and exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let v = std::hint::black_box(vec![1u8; 100]);
        drop(v);
        // SAFETY: ends the forked child at once.
        unsafe { libc::_exit(0) };
    }
    let mut st = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut st, 0) };
    assert!(count() >= 1, "the counter must see a child's allocation");
}

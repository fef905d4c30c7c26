//! Stacks for the children, which share the caller's memory (`CLONE_VM`) and so cannot use
//! a copy of the spawner thread's stack. Each spawn takes a pair (the first child's, and
//! one for the process a relay starts), with guard pages below each, from a small pool;
//! and a page mapped shared, whose memory stays common to the caller and the children even
//! when a child runs on a copy of the caller's memory (the relayed pid is written there).

use std::io;
use std::sync::Mutex;

const PAGE: usize = 4096;
/// The size of one stack. The child's frames are small; this leaves a wide margin.
const STACK: usize = 128 << 10;
/// `[guard][stack][guard][stack]`
const REGION: usize = 2 * (PAGE + STACK);
/// Slots for the child's timeline marks in the shared page (the `timeline` feature).
#[cfg(feature = "timeline")]
const MARK_SLOTS: usize = 400;
/// Regions kept for reuse.
const POOL_MAX: usize = 32;

static POOL: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());

/// Two stacks with guard pages and a shared page, returned to the pool on drop.
#[derive(Debug)]
pub(crate) struct Stacks {
    base: usize,
    shared: usize,
}

impl Stacks {
    pub(crate) fn get() -> io::Result<Stacks> {
        if let Some((base, shared)) = POOL.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            let s = Stacks { base, shared };
            s.relayed_pid()
                .store(0, std::sync::atomic::Ordering::SeqCst);
            #[cfg(feature = "timeline")]
            for m in s.marks() {
                m.store(0, std::sync::atomic::Ordering::Relaxed);
            }
            return Ok(s);
        }
        // SAFETY: a fresh anonymous private mapping; checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                REGION,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = p as usize;
        for guard in [base, base + PAGE + STACK] {
            // SAFETY: a page inside the mapping just made.
            if unsafe { libc::mprotect(guard as *mut libc::c_void, PAGE, libc::PROT_NONE) } != 0 {
                let e = io::Error::last_os_error();
                // SAFETY: unmapping the region just mapped, which nothing else uses.
                unsafe { libc::munmap(p, REGION) };
                return Err(e);
            }
        }
        // SAFETY: a fresh anonymous shared mapping of one page; checked below.
        let q = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if q == libc::MAP_FAILED {
            let e = io::Error::last_os_error();
            // SAFETY: unmapping the region just mapped, which nothing else uses.
            unsafe { libc::munmap(p, REGION) };
            return Err(e);
        }
        Ok(Stacks {
            base,
            shared: q as usize,
        })
    }

    /// Where the kernel writes the pid of the process a relay starts (`CLONE_PARENT_SETTID`),
    /// in the shared page.
    pub(crate) fn relayed_pid(&self) -> &std::sync::atomic::AtomicI32 {
        // SAFETY: the shared page is mapped, zero-initialised (or reset), aligned, and lives
        // as long as `self`; AtomicI32 has the layout of i32.
        unsafe { &*(self.shared as *const std::sync::atomic::AtomicI32) }
    }

    /// The child's timeline marks (see `spawn/timeline.rs`), in the shared page after the
    /// relayed pid: each the `CLOCK_MONOTONIC` time, in nanoseconds, at which the child
    /// passed one of its steps, or 0.
    #[cfg(feature = "timeline")]
    pub(crate) fn marks(&self) -> &[std::sync::atomic::AtomicU64] {
        const OFFSET: usize = 64;
        const _: () = assert!(OFFSET + MARK_SLOTS * 8 <= PAGE);
        // SAFETY: the slots lie inside the shared page (checked above), which is mapped,
        // zero-initialised (or reset), 8-aligned at OFFSET, and lives as long as `self`;
        // AtomicU64 has the layout of u64.
        unsafe {
            std::slice::from_raw_parts(
                (self.shared + OFFSET) as *const std::sync::atomic::AtomicU64,
                MARK_SLOTS,
            )
        }
    }

    /// The child's timeline marks: none without the `timeline` feature.
    #[cfg(not(feature = "timeline"))]
    pub(crate) fn marks(&self) -> &[std::sync::atomic::AtomicU64] {
        &[]
    }

    /// The lowest address of the first child's stack (clone3 takes the lowest address).
    pub(crate) fn first_base(&self) -> usize {
        self.base + PAGE
    }

    /// The lowest address of the relayed process's stack.
    pub(crate) fn second_base(&self) -> usize {
        self.base + 2 * PAGE + STACK
    }

    /// The size of each stack.
    pub(crate) fn size(&self) -> usize {
        STACK
    }
}

impl Drop for Stacks {
    fn drop(&mut self) {
        // Only dropped once no child runs on them (see `ChildPlan`'s keep-alive rules).
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < POOL_MAX {
            pool.push((self.base, self.shared));
        } else {
            // SAFETY: the regions were mapped by `get` and nothing uses them any more.
            unsafe {
                libc::munmap(self.base as *mut libc::c_void, REGION);
                libc::munmap(self.shared as *mut libc::c_void, PAGE);
            }
        }
    }
}

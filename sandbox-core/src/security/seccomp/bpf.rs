//! The BPF assembler: a rule list becomes one classic-BPF seccomp program (a binary search
//! on the call number, then each call's conditions), and the `sock_fprog` that loads it.

use super::{Arg, ArgOp, SyscallRule};
use std::collections::BTreeMap;

// Classic BPF opcodes, and the offsets of `struct seccomp_data` the program loads.
pub(super) const LD_W_ABS: u16 = 0x20;
pub(super) const JMP: u16 = 0x05;
pub(super) const JA: u16 = 0x00;
pub(super) const JEQ: u16 = 0x10;
pub(super) const JGT: u16 = 0x20;
pub(super) const JGE: u16 = 0x30;
pub(super) const RET: u16 = 0x06;
pub(super) const ALU_AND_K: u16 = 0x04 | 0x50;
const NR: u32 = 0;
const ARCH: u32 = 4;

/// Argument `i`'s low 32 bits (little-endian); the high ones follow.
fn arg_low(i: u8) -> u32 {
    16 + 8 * u32::from(i)
}

/// A BPF program under construction, with forward jumps to labels.
struct Asm {
    insns: Vec<seccompiler::sock_filter>,
    labels: Vec<usize>,
    fixups: Vec<(usize, usize)>,
}

impl Asm {
    fn op(&mut self, code: u16, jt: u8, jf: u8, k: u32) {
        self.insns
            .push(seccompiler::sock_filter { code, jt, jf, k });
    }
    fn label(&mut self) -> usize {
        self.labels.push(usize::MAX);
        self.labels.len() - 1
    }
    fn place(&mut self, label: usize) {
        self.labels[label] = self.insns.len();
    }
    /// An unconditional jump (32-bit offset: any distance forward).
    fn ja(&mut self, label: usize) {
        self.fixups.push((self.insns.len(), label));
        self.op(JMP | JA, 0, 0, 0);
    }
    fn ret(&mut self, action: u32) {
        self.op(RET, 0, 0, action);
    }
    fn finish(mut self) -> Vec<seccompiler::sock_filter> {
        for (at, label) in self.fixups {
            self.insns[at].k = (self.labels[label] - (at + 1)) as u32;
        }
        self.insns
    }

    /// Continues when argument condition `a` holds, jumps to `fail` otherwise.
    fn condition(&mut self, a: &Arg, fail: usize) {
        let lo = arg_low(a.index);
        let (vlo, vhi) = (a.value as u32, (a.value >> 32) as u32);
        // "If the comparison holds, skip the jump to `fail`" (or the reverse).
        let check = |asm: &mut Asm, code: u16, k: u32, holds_when_true: bool| {
            let (jt, jf) = if holds_when_true { (1, 0) } else { (0, 1) };
            asm.op(JMP | code, jt, jf, k);
            asm.ja(fail);
        };
        if a.dword {
            self.op(LD_W_ABS, 0, 0, lo);
            match a.op {
                ArgOp::Eq => check(self, JEQ, vlo, true),
                ArgOp::Ne => check(self, JEQ, vlo, false),
                ArgOp::Gt => check(self, JGT, vlo, true),
                ArgOp::Ge => check(self, JGE, vlo, true),
                ArgOp::Lt => check(self, JGE, vlo, false),
                ArgOp::Le => check(self, JGT, vlo, false),
                ArgOp::MaskedEq(m) => {
                    self.op(ALU_AND_K, 0, 0, m as u32);
                    check(self, JEQ, vlo, true)
                }
            }
            return;
        }
        match a.op {
            ArgOp::Eq => {
                self.op(LD_W_ABS, 0, 0, lo);
                check(self, JEQ, vlo, true);
                self.op(LD_W_ABS, 0, 0, lo + 4);
                check(self, JEQ, vhi, true);
            }
            ArgOp::MaskedEq(m) => {
                self.op(LD_W_ABS, 0, 0, lo);
                self.op(ALU_AND_K, 0, 0, m as u32);
                check(self, JEQ, vlo, true);
                self.op(LD_W_ABS, 0, 0, lo + 4);
                self.op(ALU_AND_K, 0, 0, (m >> 32) as u32);
                check(self, JEQ, vhi, true);
            }
            ArgOp::Ne => {
                // Holds when either half differs.
                self.op(LD_W_ABS, 0, 0, lo);
                self.op(JMP | JEQ, 0, 3, vlo);
                self.op(LD_W_ABS, 0, 0, lo + 4);
                self.op(JMP | JEQ, 0, 1, vhi);
                self.ja(fail);
            }
            ArgOp::Gt | ArgOp::Ge => {
                // High halves decide unless equal; then the low halves.
                let low = if a.op == ArgOp::Gt { JGT } else { JGE };
                self.op(LD_W_ABS, 0, 0, lo + 4);
                self.op(JMP | JGT, 4, 0, vhi);
                self.op(JMP | JEQ, 0, 2, vhi);
                self.op(LD_W_ABS, 0, 0, lo);
                self.op(JMP | low, 1, 0, vlo);
                self.ja(fail);
            }
            ArgOp::Lt | ArgOp::Le => {
                // The negation of Ge / Gt.
                let low = if a.op == ArgOp::Lt { JGE } else { JGT };
                self.op(LD_W_ABS, 0, 0, lo + 4);
                self.op(JMP | JGT, 3, 0, vhi);
                self.op(JMP | JEQ, 0, 3, vhi);
                self.op(LD_W_ABS, 0, 0, lo);
                self.op(JMP | low, 0, 1, vlo);
                self.ja(fail);
            }
        }
    }

    /// A binary search over the sorted call numbers: each leads to its block, any other
    /// number to `allow`. Any number takes a few steps, which keeps the kernel's per-filter
    /// work small: when a filter is attached it runs the filter for every call number to
    /// find the ones always allowed (its cache), so a linear chain of rules costs
    /// hundreds of microseconds per spawn.
    fn search(&mut self, nrs: &[(u32, usize)], allow: usize) {
        if nrs.len() <= 2 {
            for &(nr, block) in nrs {
                self.op(JMP | JEQ, 0, 1, nr);
                self.ja(block);
            }
            self.ja(allow);
            return;
        }
        let mid = nrs.len() / 2;
        let right = self.label();
        self.op(JMP | JGE, 0, 1, nrs[mid].0);
        self.ja(right);
        self.search(&nrs[..mid], allow);
        self.place(right);
        self.search(&nrs[mid..], allow);
    }
}

/// The filter: the architecture check (another ABI is killed), x32 calls refused with
/// `ENOSYS` (on x86_64 they carry the native architecture, with `nr | 0x40000000`, and
/// would match no rule), a binary search on the call number, then per call its rules in
/// order (all conditions of a rule met: its errno), and `ALLOW` for everything else.
pub(super) fn assemble(
    by_nr: &BTreeMap<u32, Vec<&SyscallRule>>,
    arch: seccompiler::TargetArch,
) -> Vec<seccompiler::sock_filter> {
    const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
    const AUDIT_ARCH_AARCH64: u32 = 0xC000_00B7;
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    let errno = |e: i32| libc::SECCOMP_RET_ERRNO | (e as u32 & libc::SECCOMP_RET_DATA);
    let x86_64 = arch == seccompiler::TargetArch::x86_64;
    let mut asm = Asm {
        insns: Vec::new(),
        labels: Vec::new(),
        fixups: Vec::new(),
    };
    asm.op(LD_W_ABS, 0, 0, ARCH);
    let audit = if x86_64 {
        AUDIT_ARCH_X86_64
    } else {
        AUDIT_ARCH_AARCH64
    };
    asm.op(JMP | JEQ, 1, 0, audit);
    asm.ret(libc::SECCOMP_RET_KILL_PROCESS);
    asm.op(LD_W_ABS, 0, 0, NR);
    if x86_64 {
        asm.op(JMP | JGE, 0, 1, X32_SYSCALL_BIT);
        asm.ret(errno(libc::ENOSYS));
    }
    let allow = asm.label();
    let blocks: Vec<(u32, usize)> = by_nr.keys().map(|&nr| (nr, asm.label())).collect();
    asm.search(&blocks, allow);
    asm.place(allow);
    asm.ret(libc::SECCOMP_RET_ALLOW);
    for ((_, block), rules) in blocks.iter().zip(by_nr.values()) {
        asm.place(*block);
        let mut always = false;
        for r in rules {
            if r.when.is_empty() {
                asm.ret(errno(r.errno));
                always = true;
                break;
            }
            let next = asm.label();
            for a in &r.when {
                asm.condition(a, next);
            }
            asm.ret(errno(r.errno));
            asm.place(next);
        }
        if !always {
            asm.ret(libc::SECCOMP_RET_ALLOW);
        }
    }
    asm.finish()
}

/// `struct sock_fprog`, pointing into a [`Compiled`]'s program.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct SockFprog {
    len: u16,
    filter: *const seccompiler::sock_filter,
}

/// A compiled profile: one BPF program, and the `sock_fprog` the child hands to
/// `seccomp(2)`.
#[derive(Debug)]
pub(crate) struct Compiled {
    // Owns the memory `fprog` points into.
    #[cfg_attr(not(test), allow(dead_code))]
    program: Vec<seccompiler::sock_filter>,
    fprog: SockFprog,
}

// SAFETY: the raw pointer in `fprog` points into `program`, which the value owns and never
// changes after construction (moving the Vec does not move its heap buffer); nothing is
// mutated through a shared reference.
unsafe impl Send for Compiled {}
// SAFETY: as above.
unsafe impl Sync for Compiled {}

impl Compiled {
    pub(super) fn new(program: Vec<seccompiler::sock_filter>) -> Compiled {
        let fprog = SockFprog {
            len: program.len() as u16,
            filter: program.as_ptr(),
        };
        Compiled { program, fprog }
    }

    /// The program, as `seccomp(2)` takes it.
    pub(crate) fn fprog(&self) -> &SockFprog {
        &self.fprog
    }

    #[cfg(test)]
    pub(super) fn program(&self) -> &[seccompiler::sock_filter] {
        &self.program
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::security::seccomp::Seccomp;

    /// A classic-BPF interpreter for seccomp programs (the instructions `assemble` uses).
    pub(in crate::security::seccomp) fn run(
        p: &[seccompiler::sock_filter],
        nr: u32,
        arch: u32,
        args: [u64; 6],
    ) -> u32 {
        let word = |off: u32| -> u32 {
            match off {
                0 => nr,
                4 => arch,
                o if o >= 16 => {
                    let a = args[((o - 16) / 8) as usize];
                    if (o - 16) % 8 == 0 {
                        a as u32
                    } else {
                        (a >> 32) as u32
                    }
                }
                _ => panic!("load at {off}"),
            }
        };
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let i = &p[pc];
            pc += 1;
            match i.code {
                LD_W_ABS => acc = word(i.k),
                ALU_AND_K => acc &= i.k,
                RET => return i.k,
                c if c == JMP | JA => pc += i.k as usize,
                c => {
                    let holds = match c & !JMP {
                        JEQ => acc == i.k,
                        JGT => acc > i.k,
                        JGE => acc >= i.k,
                        other => panic!("opcode {other:#x}"),
                    };
                    pc += usize::from(if holds { i.jt } else { i.jf });
                }
            }
        }
    }

    pub(in crate::security::seccomp) const X86: u32 = 0xC000_003E;
    pub(in crate::security::seccomp) const EPERM: u32 =
        libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
    pub(in crate::security::seccomp) const ENOSYS: u32 =
        libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
    pub(in crate::security::seccomp) const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;

    #[test]
    fn argument_conditions_compare_as_documented() {
        // Values where halves are equal, differ, or sit at the edges.
        let edges = [
            0u64,
            1,
            0xffff_ffff,
            1 << 32,
            (1 << 32) + 1,
            0x1_ffff_ffff,
            0x8000_0000_0000_0000,
            u64::MAX - 1,
            u64::MAX,
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut values: Vec<u64> = edges.to_vec();
        values.extend((0..24).map(|_| next()));
        for dword in [false, true] {
            for op in ["eq", "ne", "lt", "le", "gt", "ge", "masked"] {
                for &v in &values {
                    let a = if dword { Arg::dword(2) } else { Arg::new(2) };
                    let mask = v.rotate_left(7) | 0xff;
                    let a = match op {
                        "eq" => a.eq(v),
                        "ne" => a.ne(v),
                        "lt" => a.lt(v),
                        "le" => a.le(v),
                        "gt" => a.gt(v),
                        "ge" => a.ge(v),
                        _ => a.masked_eq(mask, v & mask),
                    };
                    let s = Seccomp::empty().rule(SyscallRule::new("read").when(a));
                    let p = s.compile_for(seccompiler::TargetArch::x86_64).unwrap();
                    let p = p.program();
                    for &x in values
                        .iter()
                        .chain(&[v, v.wrapping_add(1), v.wrapping_sub(1)])
                    {
                        let (xx, vv, mm) = if dword {
                            (x & 0xffff_ffff, v & 0xffff_ffff, mask & 0xffff_ffff)
                        } else {
                            (x, v, mask)
                        };
                        let want = match op {
                            "eq" => xx == vv,
                            "ne" => xx != vv,
                            "lt" => xx < vv,
                            "le" => xx <= vv,
                            "gt" => xx > vv,
                            "ge" => xx >= vv,
                            _ => xx & mm == vv & mm,
                        };
                        let got = run(p, 0, X86, [0, 0, x, 0, 0, 0]) == EPERM;
                        assert_eq!(got, want, "dword={dword} {op} {v:#x} at {x:#x}");
                    }
                }
            }
        }
    }
}

//! `linux.seccomp` for a pod's member, compiled to a classic BPF program and installed by
//! the member's process just before it execs proxcage-init (as the CT's root, which may
//! install a filter in its user namespace without no_new_privs).
//!
//! The program checks the architecture (x86_64; any other, and x32 calls, kill the
//! process, as libseccomp does for an architecture the profile does not name), then tries
//! the rules in the profile's order: each names system calls and optionally compares
//! 64-bit arguments (all comparisons of a rule must hold); the first rule that matches
//! gives its action, else the default action. Every jump is forward and local to a rule.
//! Names the `syscalls` crate does not know for x86_64 are skipped, as runc and libseccomp
//! skip names their tables lack.

use std::str::FromStr;

use proxcage_lxc_config::oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator,
};
use syscalls::x86_64::Sysno;

use super::MemberError;

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JA: u16 = 0x05;
const BPF_JEQ_K: u16 = 0x15;
const BPF_JGT_K: u16 = 0x25;
const BPF_JGE_K: u16 = 0x35;
const BPF_JSET_K: u16 = 0x45;
const BPF_AND_K: u16 = 0x54;
const BPF_RET_K: u16 = 0x06;

const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_KILL_THREAD: u32 = 0;
const RET_TRAP: u32 = 0x0003_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_TRACE: u32 = 0x7ff0_0000;
const RET_LOG: u32 = 0x7ffc_0000;
const RET_ALLOW: u32 = 0x7fff_0000;

/// Offsets in `struct seccomp_data`.
const NR: u32 = 0;
const ARCH: u32 = 4;
const fn arg_lo(i: u32) -> u32 {
    16 + 8 * i
}

/// A compiled filter: `struct sock_filter`s and the `seccomp(2)` flags.
pub(super) struct Program {
    filter: Vec<libc::sock_filter>,
    flags: libc::c_ulong,
}

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

fn unsupported(field: &str, what: &str) -> MemberError {
    MemberError::Unsupported {
        field: format!("linux.seccomp.{field}"),
        what: what.into(),
    }
}

fn action(action: LinuxSeccompAction, errno: Option<u32>, field: &str) -> Result<u32, MemberError> {
    Ok(match action {
        LinuxSeccompAction::ScmpActAllow => RET_ALLOW,
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => RET_KILL_THREAD,
        LinuxSeccompAction::ScmpActKillProcess => RET_KILL_PROCESS,
        LinuxSeccompAction::ScmpActTrap => RET_TRAP,
        LinuxSeccompAction::ScmpActLog => RET_LOG,
        // libseccomp's default errno for SCMP_ACT_ERRNO without a value is EPERM.
        LinuxSeccompAction::ScmpActErrno => RET_ERRNO | (errno.unwrap_or(1) & 0xffff),
        LinuxSeccompAction::ScmpActTrace => RET_TRACE | (errno.unwrap_or(0) & 0xffff),
        LinuxSeccompAction::ScmpActNotify => {
            return Err(unsupported(field, "SCMP_ACT_NOTIFY (an OCI seccomp agent)"))
        }
    })
}

/// Where a jump of a comparison goes when the comparison fails: to the rule's end.
#[derive(Clone, Copy, PartialEq)]
enum Fail {
    Never,
    /// The comparison fails when this jump's condition is true (jt goes to the end).
    OnTrue,
    /// ... when it is false (jf goes to the end).
    OnFalse,
}

fn step(code: u16, jt: u8, jf: u8, k: u32, fail: Fail) -> (libc::sock_filter, Fail) {
    (insn(code, jt, jf, k), fail)
}

/// The instructions of one comparison of argument `index` (64 bits, as two 32-bit words).
fn comparison(
    index: u32,
    op: LinuxSeccompOperator,
    value: u64,
    value_two: u64,
) -> Vec<(libc::sock_filter, Fail)> {
    use Fail::{Never, OnFalse, OnTrue};
    let (hi, lo) = ((value >> 32) as u32, value as u32);
    let ld_hi = step(BPF_LD_W_ABS, 0, 0, arg_lo(index) + 4, Never);
    let ld_lo = step(BPF_LD_W_ABS, 0, 0, arg_lo(index), Never);
    match op {
        LinuxSeccompOperator::ScmpCmpEq => vec![
            ld_hi,
            step(BPF_JEQ_K, 0, 0, hi, OnFalse),
            ld_lo,
            step(BPF_JEQ_K, 0, 0, lo, OnFalse),
        ],
        LinuxSeccompOperator::ScmpCmpNe => vec![
            ld_hi,
            // The high words differ: the comparison holds (the rest is skipped).
            step(BPF_JEQ_K, 0, 2, hi, Never),
            ld_lo,
            step(BPF_JEQ_K, 0, 0, lo, OnTrue),
        ],
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            let (want_hi, want_lo) = ((value_two >> 32) as u32, value_two as u32);
            vec![
                ld_hi,
                step(BPF_AND_K, 0, 0, hi, Never),
                step(BPF_JEQ_K, 0, 0, want_hi, OnFalse),
                ld_lo,
                step(BPF_AND_K, 0, 0, lo, Never),
                step(BPF_JEQ_K, 0, 0, want_lo, OnFalse),
            ]
        }
        LinuxSeccompOperator::ScmpCmpGt
        | LinuxSeccompOperator::ScmpCmpGe
        | LinuxSeccompOperator::ScmpCmpLt
        | LinuxSeccompOperator::ScmpCmpLe => {
            // The high words decide unless they are equal: above holds for > and >=,
            // below for < and <=; then the low words.
            let greater = matches!(
                op,
                LinuxSeccompOperator::ScmpCmpGt | LinuxSeccompOperator::ScmpCmpGe
            );
            let decide = if greater {
                step(BPF_JGT_K, 3, 0, hi, Never)
            } else {
                step(BPF_JGE_K, 0, 3, hi, Never)
            };
            let last = match op {
                LinuxSeccompOperator::ScmpCmpGt => step(BPF_JGT_K, 0, 0, lo, OnFalse),
                LinuxSeccompOperator::ScmpCmpGe => step(BPF_JGE_K, 0, 0, lo, OnFalse),
                LinuxSeccompOperator::ScmpCmpLt => step(BPF_JGE_K, 0, 0, lo, OnTrue),
                _ => step(BPF_JGT_K, 0, 0, lo, OnTrue),
            };
            vec![
                ld_hi,
                decide,
                step(BPF_JEQ_K, 0, 0, hi, OnFalse),
                ld_lo,
                last,
            ]
        }
    }
}

/// One rule's comparisons and its `ret`, with every failing jump going past the `ret`.
fn rule_body(
    conds: Vec<(libc::sock_filter, Fail)>,
    ret: u32,
) -> Result<Vec<libc::sock_filter>, MemberError> {
    let mut steps = conds;
    steps.push(step(BPF_RET_K, 0, 0, ret, Fail::Never));
    let end = steps.len();
    steps
        .into_iter()
        .enumerate()
        .map(|(i, (mut ins, fail))| {
            let off = u8::try_from(end - (i + 1))
                .map_err(|_| unsupported("syscalls", "a rule with this many comparisons"))?;
            match fail {
                Fail::Never => {}
                Fail::OnTrue => ins.jt = off,
                Fail::OnFalse => ins.jf = off,
            }
            Ok(ins)
        })
        .collect()
}

/// Compiles `seccomp` (x86_64 only).
pub(super) fn compile(seccomp: &LinuxSeccomp) -> Result<Program, MemberError> {
    if !cfg!(target_arch = "x86_64") {
        return Err(unsupported("", "a seccomp filter on this architecture"));
    }
    if seccomp.listener_path().is_some() {
        return Err(unsupported("listenerPath", "an OCI seccomp agent"));
    }
    let mut flags: libc::c_ulong = 0;
    for flag in seccomp.flags().iter().flatten() {
        flags |= match flag.to_string().as_str() {
            "SECCOMP_FILTER_FLAG_TSYNC" => 1,
            "SECCOMP_FILTER_FLAG_LOG" => 2,
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => 4,
            other => return Err(unsupported("flags", other)),
        };
    }
    let default = action(
        seccomp.default_action(),
        seccomp.default_errno_ret(),
        "defaultAction",
    )?;
    let mut filter = vec![
        insn(BPF_LD_W_ABS, 0, 0, ARCH),
        insn(BPF_JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        insn(BPF_RET_K, 0, 0, RET_KILL_PROCESS),
        insn(BPF_LD_W_ABS, 0, 0, NR),
        insn(BPF_JSET_K, 0, 1, X32_SYSCALL_BIT),
        insn(BPF_RET_K, 0, 0, RET_KILL_PROCESS),
    ];
    for (i, rule) in seccomp.syscalls().iter().flatten().enumerate() {
        let ret = action(
            rule.action(),
            rule.errno_ret(),
            &format!("syscalls[{i}].action"),
        )?;
        let mut conds = Vec::new();
        for arg in rule.args().iter().flatten() {
            let index = u32::try_from(arg.index())
                .ok()
                .filter(|i| *i < 6)
                .ok_or_else(|| {
                    unsupported(&format!("syscalls[{i}].args"), "an argument index above 5")
                })?;
            conds.extend(comparison(
                index,
                arg.op(),
                arg.value(),
                arg.value_two().unwrap_or(0),
            ));
        }
        let body = rule_body(conds, ret)?;
        for name in rule.names() {
            let Ok(sysno) = Sysno::from_str(name) else {
                continue;
            };
            // Not this call: past the rule's body (a long jump, the body may be long).
            filter.push(insn(BPF_JEQ_K, 1, 0, sysno.id() as u32));
            filter.push(insn(BPF_JMP_JA, 0, 0, body.len() as u32));
            filter.extend(body.iter().copied());
            // The comparisons leave an argument in the accumulator: the number again.
            filter.push(insn(BPF_LD_W_ABS, 0, 0, NR));
        }
    }
    filter.push(insn(BPF_RET_K, 0, 0, default));
    if filter.len() > usize::from(u16::MAX) {
        return Err(unsupported("syscalls", "a profile this large"));
    }
    Ok(Program { filter, flags })
}

impl Program {
    /// Installs the filter on the calling thread (and its future children).
    pub(super) fn install(&self) -> std::io::Result<()> {
        let prog = libc::sock_fprog {
            len: self.filter.len() as u16,
            filter: self.filter.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: seccomp(SECCOMP_SET_MODE_FILTER) with a sock_fprog that points at
        // instructions alive for the call; the kernel copies them.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                1, // SECCOMP_SET_MODE_FILTER
                self.flags,
                &prog as *const libc::sock_fprog,
            )
        };
        if ret < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seccomp(json: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(json).unwrap()
    }

    /// Runs the program on `nr` and `args` as the kernel would (classic BPF subset used).
    fn run(p: &Program, nr: u32, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&AUDIT_ARCH_X86_64.to_le_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let ins = p.filter[pc];
            pc += 1;
            let jump = |cond: bool| {
                if cond {
                    ins.jt as usize
                } else {
                    ins.jf as usize
                }
            };
            match ins.code {
                BPF_LD_W_ABS => {
                    let k = ins.k as usize;
                    acc = u32::from_le_bytes(data[k..k + 4].try_into().unwrap());
                }
                BPF_AND_K => acc &= ins.k,
                BPF_JMP_JA => pc += ins.k as usize,
                BPF_JEQ_K => pc += jump(acc == ins.k),
                BPF_JGT_K => pc += jump(acc > ins.k),
                BPF_JGE_K => pc += jump(acc >= ins.k),
                BPF_JSET_K => pc += jump(acc & ins.k != 0),
                BPF_RET_K => return ins.k,
                other => panic!("opcode {other:#x}"),
            }
        }
    }

    #[test]
    fn rules_compare_64_bit_arguments_and_fall_back_to_the_default() {
        let p = compile(&seccomp(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["mkdir", "no_such_call", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["fchmodat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                 "args": [{"index": 2, "value": 511, "op": "SCMP_CMP_EQ"}]},
                {"names": ["personality"], "action": "SCMP_ACT_KILL_PROCESS",
                 "args": [{"index": 0, "value": 0x1_0000_0000u64, "op": "SCMP_CMP_GE"},
                          {"index": 0, "value": 0x2_0000_0000u64, "op": "SCMP_CMP_LT"}]},
                {"names": ["clone"], "action": "SCMP_ACT_TRAP",
                 "args": [{"index": 0, "value": 0xff, "valueTwo": 0x11, "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["kill"], "action": "SCMP_ACT_LOG",
                 "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_NE"}]},
                {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
                 "args": [{"index": 0, "value": 5, "op": "SCMP_CMP_LE"}]}
            ]
        })))
        .unwrap();
        let z = [0u64; 6];
        assert_eq!(run(&p, 83, z), RET_ERRNO | 1, "mkdir");
        assert_eq!(run(&p, 258, z), RET_ERRNO | 1, "mkdirat");
        assert_eq!(run(&p, 0, z), RET_ALLOW, "read: the default");
        assert_eq!(run(&p, 268, [0, 0, 511, 0, 0, 0]), RET_ERRNO | 13);
        assert_eq!(run(&p, 268, [0, 0, 493, 0, 0, 0]), RET_ALLOW);
        assert_eq!(run(&p, 268, [0, 0, 511 | 1 << 32, 0, 0, 0]), RET_ALLOW);
        assert_eq!(
            run(&p, 135, [0x1_8000_0000, 0, 0, 0, 0, 0]),
            RET_KILL_PROCESS
        );
        assert_eq!(run(&p, 135, [0x2_0000_0000, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(run(&p, 135, [0xffff_ffff, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(run(&p, 56, [0x1211, 0, 0, 0, 0, 0]), RET_TRAP);
        assert_eq!(run(&p, 56, [0x1212, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(run(&p, 62, [1, 15, 0, 0, 0, 0]), RET_LOG);
        assert_eq!(run(&p, 62, [1, 9, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(run(&p, 62, [1, 9 | 1 << 32, 0, 0, 0, 0]), RET_LOG);
        assert_eq!(run(&p, 39, [5, 0, 0, 0, 0, 0]), RET_ERRNO | 38);
        assert_eq!(run(&p, 39, [6, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(run(&p, 39, [1 << 32, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(run(&p, 83 | X32_SYSCALL_BIT, z), RET_KILL_PROCESS, "x32");
    }
}

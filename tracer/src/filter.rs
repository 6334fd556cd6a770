//! Compiles a profile into a classic-BPF seccomp program, so `profile exec` can enforce it on a
//! host command without a container runtime. Covers what `profile` writes: allow-lists (and
//! deny-lists) by name on x86_64, without argument rules.
use std::collections::BTreeSet;

use libc::{SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO, SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_LOG};
use tracer_common::X32_SYSCALL_BIT;

use crate::{
    error::{Error, Result},
    seccomp::{ACT_ALLOW, ACT_ERRNO, Profile},
};

// EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE (libc doesn't export it).
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
// Offsets in struct seccomp_data.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;

fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

fn action(name: &str, errno: Option<u32>) -> Result<u32> {
    Ok(match name {
        ACT_ALLOW => SECCOMP_RET_ALLOW,
        "SCMP_ACT_LOG" => SECCOMP_RET_LOG,
        ACT_ERRNO => SECCOMP_RET_ERRNO | (errno.unwrap_or(libc::EPERM as u32) & 0xffff),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_PROCESS" => SECCOMP_RET_KILL_PROCESS,
        other => {
            return Err(Error::Invalid(format!(
                "action {other} is not supported by `profile exec`"
            )));
        }
    })
}

/// The filter for `profile` on x86_64. Calls through other ABIs get the default action.
pub fn compile(profile: &Profile) -> Result<Vec<libc::sock_filter>> {
    let default = action(&profile.default_action, profile.default_errno_ret)?;
    let mut listed: BTreeSet<u32> = BTreeSet::new();
    let mut rule_action = None;
    for rule in &profile.syscalls {
        if !rule.args.is_empty() || !rule.includes.is_empty() || !rule.excludes.is_empty() {
            return Err(Error::Invalid(
                "`profile exec` supports rules without args, includes or excludes".into(),
            ));
        }
        let act = action(&rule.action, rule.errno_ret)?;
        if *rule_action.get_or_insert(act) != act {
            return Err(Error::Invalid(
                "`profile exec` supports one action for all rules".into(),
            ));
        }
        for name in rule.names.iter().chain(rule.name.iter()) {
            match name.parse::<syscalls::x86_64::Sysno>() {
                Ok(sysno) => {
                    listed.insert(sysno.id() as u32);
                }
                Err(_) => log::warn!("{name} is not an x86_64 syscall; ignored"),
            }
        }
    }
    let listed_action = rule_action.unwrap_or(default);
    let n = listed.len();
    if n > 250 {
        return Err(Error::Invalid(
            "too many syscalls for `profile exec`".into(),
        ));
    }
    let mut prog = vec![
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, DATA_ARCH),
        // Not x86_64: default (skip the number checks and the listed return).
        jump(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            AUDIT_ARCH_X86_64,
            0,
            n as u8 + 2,
        ),
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, DATA_NR),
        // x32 numbers: default.
        jump(
            libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K,
            X32_SYSCALL_BIT as u32,
            n as u8,
            0,
        ),
    ];
    for (i, nr) in listed.iter().enumerate() {
        // Match: jump to the listed return, past the remaining compares and the default return.
        let to_listed = (n - i) as u8;
        prog.push(jump(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            *nr,
            to_listed,
            0,
        ));
    }
    prog.push(stmt(libc::BPF_RET | libc::BPF_K, default));
    prog.push(stmt(libc::BPF_RET | libc::BPF_K, listed_action));
    Ok(prog)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::Abi;

    #[test]
    fn allow_list_layout() {
        let abis = BTreeSet::from([Abi::X86_64]);
        let p = Profile::allowing(["read", "write"], &abis);
        let prog = compile(&p).unwrap();
        assert_eq!(prog.len(), 8);
        // arch mismatch jumps to the default return
        assert_eq!(1 + 1 + prog[1].jf as usize, 6);
        // x32 jumps to the default return
        assert_eq!(3 + 1 + prog[3].jt as usize, 6);
        // each number jumps to the listed return
        assert_eq!((prog[4].k, 4 + 1 + prog[4].jt as usize), (0, 7));
        assert_eq!((prog[5].k, 5 + 1 + prog[5].jt as usize), (1, 7));
        assert_eq!(prog[6].k, SECCOMP_RET_ERRNO | 1);
        assert_eq!(prog[7].k, SECCOMP_RET_ALLOW);
    }

    #[test]
    fn refuses_argument_rules() {
        assert!(compile(&Profile::docker_default()).is_err());
    }
}

//! The independent judge of what a profile allows on another architecture: libseccomp
//! (Debian's `python3-seccomp`, `judge/compile.py`) compiles the profile for one
//! architecture alone as the engine and runc hand it over there, and a classic-BPF
//! interpreter runs the filter on `seccomp_data` of that architecture. Nothing of `profile`'s
//! own evaluation is used.
use std::{collections::BTreeMap, path::Path, process::Command};

/// `AUDIT_ARCH_X86_64` and `AUDIT_ARCH_AARCH64` (linux/audit.h), seccomp_data's `arch`.
pub const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
pub const AUDIT_ARCH_AARCH64: u32 = 0xC000_00B7;
/// `SECCOMP_RET_ALLOW`, and the mask of the action part of a filter's answer.
pub const RET_ALLOW: u32 = 0x7FFF_0000;
const RET_ACTION_FULL: u32 = 0xFFFF_0000;

const COMPILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/judge/compile.py");
/// Debian's python3-seccomp is installed for the system Python.
const PYTHON: &str = "/usr/bin/python3";

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// What the kernel hands a seccomp filter (`struct seccomp_data`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeccompData {
    pub nr: u32,
    pub arch: u32,
    pub instruction_pointer: u64,
    pub args: [u64; 6],
}

impl SeccompData {
    pub fn new(arch: u32, nr: u32, args: [u64; 6]) -> Self {
        SeccompData {
            nr,
            arch,
            instruction_pointer: 0,
            args,
        }
    }

    /// The 32-bit word at byte `offset`, little-endian as on both architectures.
    fn word(&self, offset: u32) -> Option<u32> {
        let mut bytes = Vec::with_capacity(64);
        bytes.extend_from_slice(&self.nr.to_le_bytes());
        bytes.extend_from_slice(&self.arch.to_le_bytes());
        bytes.extend_from_slice(&self.instruction_pointer.to_le_bytes());
        for a in self.args {
            bytes.extend_from_slice(&a.to_le_bytes());
        }
        let at = usize::try_from(offset).ok()?;
        let w = bytes.get(at..at + 4)?;
        Some(u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
    }
}

/// The filter libseccomp builds from the Docker profile at `path` for `goarch` (`amd64`,
/// `arm64`) alone, for Docker's default capabilities on a 6.18 kernel.
pub fn compile(path: &Path, goarch: &str) -> Vec<Insn> {
    let out = Command::new(PYTHON)
        .arg(COMPILE)
        .arg(path)
        .arg(goarch)
        .output()
        .expect("running /usr/bin/python3 (python3-seccomp: scripts/host-setup.sh installs it)");
    assert!(
        out.status.success(),
        "compile.py {} {goarch}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let (insns, rest) = out.stdout.as_chunks::<8>();
    assert!(rest.is_empty() && !insns.is_empty());
    insns
        .iter()
        .map(|c| Insn {
            code: u16::from_le_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect()
}

/// libseccomp's own table for `goarch`: number → name.
pub fn libseccomp_names(goarch: &str) -> BTreeMap<u32, String> {
    let out = Command::new(PYTHON)
        .args([COMPILE, "names", goarch])
        .output()
        .expect("running /usr/bin/python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table: BTreeMap<String, String> =
        serde_json::from_slice(&out.stdout).expect("a JSON table");
    table
        .into_iter()
        .map(|(nr, name)| (nr.parse().expect("a number"), name))
        .collect()
}

/// Whether the filter's answer lets the call run.
pub fn allows(ret: u32) -> bool {
    ret & RET_ACTION_FULL == RET_ALLOW
}

/// Runs a classic BPF program on `data` as the kernel's seccomp does, returning its answer.
/// Panics on what the kernel's checker would refuse (a jump out, a load past the data).
pub fn run(prog: &[Insn], data: &SeccompData) -> u32 {
    let (mut a, mut x) = (0u32, 0u32);
    let mut mem = [0u32; 16];
    let mut pc = 0usize;
    loop {
        let i = prog[pc];
        pc += 1;
        let src = if i.code & 0x08 != 0 { x } else { i.k };
        match i.code & 0x07 {
            // BPF_LD
            0x00 => {
                a = match i.code & 0xe0 {
                    0x20 => data.word(i.k).expect("a load within seccomp_data"),
                    0x00 => i.k,
                    0x60 => mem[i.k as usize],
                    0x80 => 64,
                    mode => panic!("BPF_LD mode {mode:#x}"),
                }
            }
            // BPF_LDX
            0x01 => {
                x = match i.code & 0xe0 {
                    0x00 => i.k,
                    0x60 => mem[i.k as usize],
                    0x80 => 64,
                    mode => panic!("BPF_LDX mode {mode:#x}"),
                }
            }
            0x02 => mem[i.k as usize] = a,
            0x03 => mem[i.k as usize] = x,
            // BPF_ALU
            0x04 => {
                a = match i.code & 0xf0 {
                    0x00 => a.wrapping_add(src),
                    0x10 => a.wrapping_sub(src),
                    0x20 => a.wrapping_mul(src),
                    0x30 => a.checked_div(src).expect("no division by zero"),
                    0x40 => a | src,
                    0x50 => a & src,
                    0x60 => a.checked_shl(src).unwrap_or(0),
                    0x70 => a.checked_shr(src).unwrap_or(0),
                    0x80 => a.wrapping_neg(),
                    0x90 => a.checked_rem(src).expect("no division by zero"),
                    0xa0 => a ^ src,
                    op => panic!("BPF_ALU op {op:#x}"),
                }
            }
            // BPF_JMP
            0x05 => {
                let taken = match i.code & 0xf0 {
                    0x00 => {
                        pc += i.k as usize;
                        continue;
                    }
                    0x10 => a == src,
                    0x20 => a > src,
                    0x30 => a >= src,
                    0x40 => a & src != 0,
                    op => panic!("BPF_JMP op {op:#x}"),
                };
                pc += usize::from(if taken { i.jt } else { i.jf });
            }
            // BPF_RET
            0x06 => {
                return match i.code & 0x18 {
                    0x00 => i.k,
                    0x10 => a,
                    rval => panic!("BPF_RET source {rval:#x}"),
                };
            }
            // BPF_MISC: TAX, TXA
            _ => match i.code & 0xf8 {
                0x00 => x = a,
                0x80 => a = x,
                op => panic!("BPF_MISC op {op:#x}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insn(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
        Insn { code, jt, jf, k }
    }

    #[test]
    fn a_hand_written_filter_runs_as_the_kernel_would() {
        // if arch != aarch64: kill; if nr == 56 (openat): allow; if arg0 & 4: errno 5;
        // else errno 1.
        let prog = [
            insn(0x20, 0, 0, 4),
            insn(0x15, 1, 0, AUDIT_ARCH_AARCH64),
            insn(0x06, 0, 0, 0),
            insn(0x20, 0, 0, 0),
            insn(0x15, 0, 1, 56),
            insn(0x06, 0, 0, RET_ALLOW),
            insn(0x20, 0, 0, 16),
            insn(0x45, 0, 1, 4),
            insn(0x06, 0, 0, 0x0005_0005),
            insn(0x06, 0, 0, 0x0005_0001),
        ];
        let arm = |nr, arg0| {
            run(
                &prog,
                &SeccompData::new(AUDIT_ARCH_AARCH64, nr, [arg0, 0, 0, 0, 0, 0]),
            )
        };
        assert!(allows(arm(56, 0)));
        assert_eq!(arm(57, 4), 0x0005_0005);
        assert_eq!(arm(57, 3), 0x0005_0001);
        let x86 = SeccompData::new(AUDIT_ARCH_X86_64, 56, [0; 6]);
        assert_eq!(run(&prog, &x86), 0);
    }
}

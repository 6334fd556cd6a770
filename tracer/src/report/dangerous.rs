//! What a profile allows that matters: the syscalls Docker's default may allow that a workload
//! rarely needs (with why they matter), and the argument rules a profile keeps, in words, with
//! what they block that Docker's default allows.
use std::fmt::Write as _;

use serde::Serialize;

use crate::{
    names::{Abi, dangerous::DANGEROUS},
    seccomp::{Arg, Context, Learned, Profile, conditions::rule_region, words::rule_words},
};

/// A named syscall and why it matters.
#[derive(Clone, Debug, Serialize)]
pub struct Blocked {
    pub name: &'static str,
    pub reason: &'static str,
}

/// The syscalls of [`DANGEROUS`] that `pick` keeps, with their reasons.
pub fn dangerous(pick: impl Fn(&str) -> bool) -> Vec<Blocked> {
    DANGEROUS
        .iter()
        .filter(|(name, _)| pick(name))
        .map(|&(name, reason)| Blocked { name, reason })
        .collect()
}

/// Argument values worth naming when a profile allows or blocks them: (syscall, values of
/// arguments 0 and 1, words).
const NOTABLE_ARGUMENTS: &[(&str, [Option<u64>; 2], &str)] = &[
    ("socket", [Some(1), Some(1)], "AF_UNIX SOCK_STREAM"),
    ("socket", [Some(2), Some(1)], "AF_INET SOCK_STREAM"),
    ("socket", [Some(2), Some(2)], "AF_INET SOCK_DGRAM"),
    ("socket", [Some(2), Some(3)], "AF_INET SOCK_RAW"),
    ("socket", [Some(10), Some(1)], "AF_INET6 SOCK_STREAM"),
    ("socket", [Some(10), Some(3)], "AF_INET6 SOCK_RAW"),
    ("socket", [Some(16), Some(3)], "AF_NETLINK"),
    ("socket", [Some(17), Some(3)], "AF_PACKET SOCK_RAW"),
    ("socket", [Some(38), Some(5)], "AF_ALG"),
    ("socket", [Some(40), Some(1)], "AF_VSOCK"),
    ("personality", [Some(0x40000), None], "ADDR_NO_RANDOMIZE"),
    ("personality", [Some(8), None], "PER_LINUX_32BIT"),
    ("clone", [Some(0x1000_0011), None], "CLONE_NEWUSER"),
    ("clone", [Some(0x4000_0011), None], "CLONE_NEWNET"),
    ("clone", [Some(0x2_0011), None], "CLONE_NEWNS"),
];

/// A syscall the profile allows only for some arguments.
#[derive(Clone, Debug, Serialize)]
pub struct ArgumentLine {
    pub syscall: String,
    /// Each allowed case in words.
    pub allows: Vec<String>,
    /// Notable argument values this profile denies that Docker's default allows.
    pub blocks_beyond_default: Vec<String>,
    /// The learned values overflowed the kernel's bound: the base's rule was kept instead.
    pub fell_back: bool,
}

impl ArgumentLine {
    /// `socket: AF_INET, SOCK_STREAM; AF_UNIX, SOCK_STREAM; blocks AF_PACKET SOCK_RAW, ... that
    /// Docker's default allows`, with names quoted by `q`.
    pub fn sentence(&self, q: &str) -> String {
        let mut s = format!("{q}{}{q}: {}", self.syscall, self.allows.join("; "));
        if !self.blocks_beyond_default.is_empty() {
            let _ = write!(
                s,
                "; blocks {} that Docker's default allows",
                self.blocks_beyond_default.join(", ")
            );
        }
        if self.fell_back {
            s.push_str(" (too many values to learn: the base's rule)");
        }
        s
    }
}

/// The argument-conditioned syscalls of `profile`, with what they block beyond the default.
pub fn argument_lines(
    profile: &Profile,
    learned: Option<&Learned>,
    ctx: &Context,
) -> Vec<ArgumentLine> {
    let mine = profile.decisions(Abi::X86_64, ctx);
    let theirs = Profile::docker_default().decisions(Abi::X86_64, ctx);
    let mut out = Vec::new();
    for (name, d) in &mine {
        if d.denied() || d.lower.is_all() {
            continue;
        }
        let mut allows: Vec<String> = profile
            .syscalls
            .iter()
            .filter(|r| r.applies(ctx) && r.act().runs() && r.all_names().any(|n| n == name))
            .map(|r| rule_words(name, &r.args))
            .collect();
        allows.dedup();
        let blocks = NOTABLE_ARGUMENTS
            .iter()
            .filter(|(n, _, _)| n == name)
            .filter(|(_, values, _)| {
                let args: Vec<Arg> = values
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| v.map(|v| Arg::eq(i as u32, v)))
                    .collect();
                let probe = rule_region(&args);
                theirs.get(name).is_some_and(|t| probe.within(&t.lower)) && !probe.within(&d.upper)
            })
            .map(|(_, _, words)| words.to_string())
            .collect();
        out.push(ArgumentLine {
            syscall: name.to_string(),
            allows,
            blocks_beyond_default: blocks,
            fell_back: learned
                .is_some_and(|l| l.args.iter().any(|a| a.syscall == *name && a.fell_back)),
        });
    }
    out
}

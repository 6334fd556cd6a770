//! Argument values and conditions in words, for reports: constants by name (`AF_INET`,
//! `SOCK_STREAM`, `CLONE_NEWUSER`) and comparisons said, never libseccomp's operators.
use tracer_common::SOCK_TYPE_MASK;

use super::model::{Arg, Op};

/// A value's constant name where one is well known, else hex.
pub fn value_word(syscall: &str, index: u32, v: u64) -> String {
    let name = match (syscall, index) {
        ("socket", 0) => address_family(v),
        ("socket", 1) => match v {
            1 => Some("SOCK_STREAM"),
            2 => Some("SOCK_DGRAM"),
            3 => Some("SOCK_RAW"),
            4 => Some("SOCK_RDM"),
            5 => Some("SOCK_SEQPACKET"),
            10 => Some("SOCK_PACKET"),
            _ => None,
        },
        ("personality", 0) => match v {
            0 => Some("PER_LINUX"),
            8 => Some("PER_LINUX_32BIT"),
            0x20000 => Some("UNAME26"),
            0x20008 => Some("PER_LINUX_32BIT|UNAME26"),
            0xffff_ffff => Some("query (0xffffffff)"),
            _ => None,
        },
        _ => None,
    };
    name.map(String::from).unwrap_or_else(|| format!("{v:#x}"))
}

/// Linux address family names (include/linux/socket.h).
pub fn address_family(v: u64) -> Option<&'static str> {
    const NAMES: [&str; 46] = [
        "AF_UNSPEC",
        "AF_UNIX",
        "AF_INET",
        "AF_AX25",
        "AF_IPX",
        "AF_APPLETALK",
        "AF_NETROM",
        "AF_BRIDGE",
        "AF_ATMPVC",
        "AF_X25",
        "AF_INET6",
        "AF_ROSE",
        "AF_DECnet",
        "AF_NETBEUI",
        "AF_SECURITY",
        "AF_KEY",
        "AF_NETLINK",
        "AF_PACKET",
        "AF_ASH",
        "AF_ECONET",
        "AF_ATMSVC",
        "AF_RDS",
        "AF_SNA",
        "AF_IRDA",
        "AF_PPPOX",
        "AF_WANPIPE",
        "AF_LLC",
        "AF_IB",
        "AF_MPLS",
        "AF_CAN",
        "AF_TIPC",
        "AF_BLUETOOTH",
        "AF_IUCV",
        "AF_RXRPC",
        "AF_ISDN",
        "AF_PHONET",
        "AF_IEEE802154",
        "AF_CAIF",
        "AF_ALG",
        "AF_NFC",
        "AF_VSOCK",
        "AF_KCM",
        "AF_QIPCRTR",
        "AF_SMC",
        "AF_XDP",
        "AF_MCTP",
    ];
    NAMES.get(usize::try_from(v).ok()?).copied()
}

/// The argument conditions of a rule in words, for reports: `flags without CLONE_NEWNS,
/// CLONE_NEWUTS, … (no new namespaces)`, `arg1 below 0x10`.
pub fn rule_words(name: &str, args: &[Arg]) -> String {
    args.iter()
        .map(|a| condition_words(name, a))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One condition in words: constants named where they are well known, the comparison said.
fn condition_words(name: &str, a: &Arg) -> String {
    let arg = format!("arg{}", a.index);
    let v = a.value;
    match a.op {
        Op::Eq => value_word(name, a.index, v),
        Op::MaskedEq if v == SOCK_TYPE_MASK && name == "socket" => {
            value_word(name, a.index, a.value_two)
        }
        Op::MaskedEq if a.value_two == 0 => match flag_words(name, a.index, v) {
            Some(words) => words,
            None => format!("{arg} with none of the bits {v:#x}"),
        },
        Op::MaskedEq if a.value_two == v => format!("{arg} with all of the bits {v:#x}"),
        Op::MaskedEq => format!("{arg} whose bits {v:#x} are {:#x}", a.value_two),
        Op::Ne => format!("{arg} other than {}", value_word(name, a.index, v)),
        Op::Lt => format!("{arg} below {v:#x}"),
        Op::Le => format!("{arg} at most {v:#x}"),
        Op::Ge => format!("{arg} at least {v:#x}"),
        Op::Gt => format!("{arg} above {v:#x}"),
    }
}

/// Flags a condition forbids, by name, where the argument is a known set of flags and every
/// bit of `mask` has one.
fn flag_words(name: &str, index: u32, mask: u64) -> Option<String> {
    // include/uapi/linux/sched.h: the namespace flags Docker's default keeps from clone.
    const CLONE_NAMESPACES: [(u64, &str); 7] = [
        (0x0002_0000, "CLONE_NEWNS"),
        (0x0200_0000, "CLONE_NEWCGROUP"),
        (0x0400_0000, "CLONE_NEWUTS"),
        (0x0800_0000, "CLONE_NEWIPC"),
        (0x1000_0000, "CLONE_NEWUSER"),
        (0x2000_0000, "CLONE_NEWPID"),
        (0x4000_0000, "CLONE_NEWNET"),
    ];
    let (flags, what) = match (name, index) {
        ("clone" | "unshare", 0) => (&CLONE_NAMESPACES, "flags"),
        _ => return None,
    };
    let named: u64 = flags
        .iter()
        .map(|(bit, _)| bit)
        .filter(|b| mask & *b != 0)
        .sum();
    if named != mask {
        return None;
    }
    let names: Vec<&str> = flags
        .iter()
        .filter(|(bit, _)| mask & bit != 0)
        .map(|(_, n)| *n)
        .collect();
    let all = named == flags.iter().map(|(bit, _)| bit).sum::<u64>();
    Some(format!(
        "{what} without {}{}",
        names.join(", "),
        if all { " (no new namespaces)" } else { "" }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words() {
        assert_eq!(address_family(40), Some("AF_VSOCK"));
        assert_eq!(value_word("socket", 1, 3), "SOCK_RAW");
        assert_eq!(value_word("ioctl", 1, 0x5401), "0x5401");
    }

    #[test]
    fn conditions_are_said_in_words() {
        let masked = |index, value, value_two| Arg {
            index,
            value,
            value_two,
            op: Op::MaskedEq,
        };
        // Docker's default rule for clone.
        assert_eq!(
            rule_words("clone", &[masked(0, 0x7e02_0000, 0)]),
            "flags without CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET (no new namespaces)"
        );
        assert_eq!(
            rule_words("clone", &[masked(0, 0x1000_0000, 0)]),
            "flags without CLONE_NEWUSER"
        );
        assert_eq!(
            rule_words("ioctl", &[masked(1, 0xff00, 0)]),
            "arg1 with none of the bits 0xff00"
        );
        assert_eq!(
            rule_words("socket", &[Arg::eq(0, 10), masked(1, SOCK_TYPE_MASK, 1)]),
            "AF_INET6, SOCK_STREAM"
        );
        let cmp = |op| Arg {
            index: 0,
            value: 8,
            value_two: 0,
            op,
        };
        assert_eq!(
            rule_words("personality", &[cmp(Op::Ne)]),
            "arg0 other than PER_LINUX_32BIT"
        );
        assert_eq!(rule_words("x", &[cmp(Op::Lt)]), "arg0 below 0x8");
        for words in [Op::Le, Op::Ge, Op::Gt, Op::MaskedEq].map(|op| rule_words("x", &[cmp(op)])) {
            assert!(
                !words.contains("Masked") && !words.contains("SCMP"),
                "{words}"
            );
        }
    }
}

//! Where kernel functions are, from /proc/kallsyms: the address ranges of the functions that
//! check capabilities only to probe (CAP_OPT_NOAUDIT), which the kernel side tells from the
//! stack of a capability check, since the tracepoint does not carry the option.
use std::collections::BTreeMap;

/// The functions of Linux 5.x–6.x that check capabilities with CAP_OPT_NOAUDIT: the noaudit
/// wrappers of kernel/capability.c (ptrace's and /proc's access checks go through them),
/// commoncap's overcommit check (asked on every accounted mmap and brk), and kallsyms' own
/// check of who may see addresses. A function the running kernel lacks is left out.
const NOAUDIT_CALLERS: &[&str] = &[
    "has_ns_capability_noaudit",
    "has_capability_noaudit",
    "ns_capable_noaudit",
    "cap_vm_enough_memory",
    "security_vm_enough_memory_mm",
    "kallsyms_show_value",
];

const KALLSYMS: &str = "/proc/kallsyms";

/// The `[start, end)` address ranges of [`NOAUDIT_CALLERS`] in the running kernel, sorted;
/// empty when the kernel hides its addresses (kptr_restrict) or has none of them.
pub fn noaudit_callers() -> Vec<[u64; 2]> {
    std::fs::read_to_string(KALLSYMS)
        .map(|text| ranges(&text, NOAUDIT_CALLERS))
        .unwrap_or_default()
}

/// The ranges of `names` in a kallsyms listing: each from its address to the next higher
/// address of any text symbol.
fn ranges(kallsyms: &str, names: &[&str]) -> Vec<[u64; 2]> {
    let mut text: BTreeMap<u64, &str> = BTreeMap::new();
    for line in kallsyms.lines() {
        let mut fields = line.split_whitespace();
        let (Some(addr), Some(kind), Some(name)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if !matches!(kind, "T" | "t") {
            continue;
        }
        if let Ok(addr) = u64::from_str_radix(addr, 16)
            && addr != 0
        {
            text.entry(addr).or_insert(name);
        }
    }
    let mut found: Vec<[u64; 2]> = text
        .iter()
        .filter(|(_, name)| names.contains(name))
        .filter_map(|(&start, _)| {
            let end = text.range(start + 1..).next().map(|(&a, _)| a)?;
            Some([start, end])
        })
        .collect();
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_ends_where_the_next_function_starts() {
        let listing = "\
ffffffff81000000 T _stext
ffffffff8136ff00 T has_capability_noaudit
ffffffff8136ff80 t helper [mod]
ffffffff813700b0 T ns_capable_noaudit
ffffffff813700b0 D data_at_the_same_address
ffffffff81370220 T next_one
0000000000000000 T hidden
";
        assert_eq!(
            ranges(
                listing,
                &["ns_capable_noaudit", "has_capability_noaudit", "nope"]
            ),
            [
                [0xffffffff8136ff00, 0xffffffff8136ff80],
                [0xffffffff813700b0, 0xffffffff81370220]
            ]
        );
        // Addresses hidden by kptr_restrict read as zero: nothing is found.
        assert!(
            ranges(
                "0000000000000000 T ns_capable_noaudit\n",
                &["ns_capable_noaudit"]
            )
            .is_empty()
        );
    }

    #[test]
    fn the_running_kernel_has_them() {
        if !std::path::Path::new(KALLSYMS).exists() {
            return;
        }
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!(
                "SKIPPED the_running_kernel_has_them: kallsyms hides addresses from non-root"
            );
            return;
        }
        assert!(noaudit_callers().len() >= 4, "{:?}", noaudit_callers());
    }
}

//! One recording, both architectures: the aarch64 table and the x86_64 → aarch64 counterparts
//! are the kernel's, and a profile derived for arm64 is judged by libseccomp itself, compiled
//! for SCMP_ARCH_AARCH64 alone and run on aarch64 `seccomp_data` for every syscall number.
use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    process::Command,
};

use profile_tests::{
    judge::{self, AUDIT_ARCH_AARCH64, AUDIT_ARCH_X86_64, Insn, SeccompData},
    *,
};
use tracer::{
    names::{
        Abi, Arch,
        counterparts::{self, OnAarch64},
    },
    seccomp::{Context, Profile},
};

const PROFILES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../profiles");
const DEFAULT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tracer/assets/docker-default-seccomp.json"
);

/// `__NR_name` → number, as the C preprocessor reads the kernel's uapi header `header`.
fn kernel_table(header: &str, include: &str) -> BTreeMap<String, u32> {
    let out = Command::new("cpp")
        .args(["-dM", "-nostdinc", "-I", include, header])
        .output()
        .expect("cpp (gcc)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let defines: BTreeMap<String, String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut w = l.strip_prefix("#define ")?.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.to_string()))
        })
        .collect();
    // `#define __NR_newfstatat __NR3264_fstatat`: follow the names to a number.
    let value = |v: &String| {
        let mut v = v.as_str();
        for _ in 0..4 {
            if let Ok(n) = v.trim_matches(|c| c == '(' || c == ')').parse() {
                return Some(n);
            }
            v = defines.get(v)?.as_str();
        }
        None
    };
    defines
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("__NR_")?.to_string(), value(v)?)))
        .filter(|(k, _)| k != "syscalls" && k != "arch_specific_syscall")
        .collect()
}

/// The kernel's aarch64 table (linux-libc-dev-arm64-cross) and x86_64 table (linux-libc-dev).
fn kernel_tables() -> (BTreeMap<String, u32>, BTreeMap<String, u32>) {
    let aarch64 = kernel_table(
        "/usr/aarch64-linux-gnu/include/asm/unistd.h",
        "/usr/aarch64-linux-gnu/include",
    );
    let x86_64 = kernel_table(
        "/usr/include/x86_64-linux-gnu/asm/unistd_64.h",
        "/usr/include",
    );
    (aarch64, x86_64)
}

#[test]
fn the_tables_and_counterparts_are_the_kernels() {
    let (aarch64, x86_64) = kernel_tables();
    assert!(
        aarch64.len() > 290 && x86_64.len() > 350,
        "{} {}",
        aarch64.len(),
        x86_64.len()
    );
    for (abi, table) in [(Abi::Aarch64, &aarch64), (Abi::X86_64, &x86_64)] {
        for (name, nr) in table {
            assert_eq!(abi.name(*nr), Some(name.as_str()), "{abi} {nr}");
        }
        // Calls newer than the headers (Linux 6.1) are the syscalls crate's (6.17): on
        // numbers the headers leave free.
        let numbers: BTreeSet<u32> = table.values().copied().collect();
        for nr in 0..1024 {
            if let Some(name) = abi.name(nr) {
                assert!(
                    table.get(name) == Some(&nr) || !numbers.contains(&nr),
                    "{abi} {nr} {name}"
                );
            }
        }
    }
    // Every x86_64 call the aarch64 kernel lacks has its row, and every counterpart is there.
    for name in x86_64.keys().filter(|n| !aarch64.contains_key(*n)) {
        assert!(
            matches!(counterparts::on_aarch64(name), Some(OnAarch64::Replaced(_))),
            "{name}"
        );
    }
    for row in counterparts::REPLACEMENTS {
        assert!(!aarch64.contains_key(row.x86_64), "{}", row.x86_64);
        for c in row.aarch64 {
            assert!(aarch64.contains_key(c.name), "{} → {}", row.x86_64, c.name);
        }
    }
    eprintln!(
        "kernel tables: {} aarch64 and {} x86_64 numbers; {} x86_64 calls without an aarch64 one ({} with counterparts)",
        aarch64.len(),
        x86_64.len(),
        counterparts::REPLACEMENTS.len(),
        counterparts::REPLACEMENTS
            .iter()
            .filter(|r| !r.aarch64.is_empty())
            .count()
    );
}

#[test]
fn libseccomp_numbers_aarch64_as_profile_does() {
    let table = judge::libseccomp_names("arm64");
    assert!(table.len() > 300, "{}", table.len());
    for (nr, name) in &table {
        assert_eq!(Abi::Aarch64.name(*nr), Some(name.as_str()), "{nr}");
    }
    let ours = Abi::Aarch64.names();
    let lacking: Vec<&&str> = ours
        .iter()
        .filter(|n| !table.values().any(|m| m == **n))
        .collect();
    eprintln!(
        "libseccomp 2.5.4 lacks {} of profile's {} aarch64 names: {lacking:?}",
        lacking.len(),
        ours.len()
    );
}

/// Argument vectors worth trying for each syscall name: all zero, and one meeting each
/// rule's conditions for that name.
fn probes(profile: &Path) -> BTreeMap<String, Vec<[u64; 6]>> {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(profile).expect("profile")).expect("JSON");
    let mut out: BTreeMap<String, Vec<[u64; 6]>> = BTreeMap::new();
    for rule in json["syscalls"].as_array().into_iter().flatten() {
        let Some(args) = rule["args"].as_array() else {
            continue;
        };
        let mut v = [0u64; 6];
        for a in args {
            let (i, value, two) = (
                a["index"].as_u64().unwrap_or(0) as usize,
                a["value"].as_u64().unwrap_or(0),
                a["valueTwo"].as_u64().unwrap_or(0),
            );
            v[i] = match a["op"].as_str().unwrap_or_default() {
                "SCMP_CMP_MASKED_EQ" => two,
                "SCMP_CMP_GT" | "SCMP_CMP_NE" => value.wrapping_add(1),
                "SCMP_CMP_LT" => value.saturating_sub(1),
                _ => value,
            };
        }
        for name in rule["names"].as_array().into_iter().flatten() {
            out.entry(name.as_str().unwrap_or_default().to_string())
                .or_default()
                .push(v);
        }
    }
    out
}

/// The names `prog` lets run for some probe, over libseccomp's table of `goarch`.
fn allowed_by(
    prog: &[Insn],
    goarch: &str,
    probes: &BTreeMap<String, Vec<[u64; 6]>>,
) -> BTreeSet<String> {
    let arch = match goarch {
        "arm64" => AUDIT_ARCH_AARCH64,
        _ => AUDIT_ARCH_X86_64,
    };
    let table = judge::libseccomp_names(goarch);
    let mut allowed = BTreeSet::new();
    let mut evaluated = 0;
    for nr in 0..=table.keys().max().copied().unwrap_or(0) + 64 {
        let name = table.get(&nr).cloned().unwrap_or_else(|| format!("#{nr}"));
        let zero = [[0u64; 6]];
        let vectors = probes.get(&name).map_or(&zero[..], |v| &v[..]);
        for args in zero.iter().chain(vectors) {
            evaluated += 1;
            if judge::allows(judge::run(prog, &SeccompData::new(arch, nr, *args))) {
                allowed.insert(name.clone());
            }
        }
    }
    assert!(evaluated > table.len());
    allowed
}

/// What runs into a container escape, as (name, arguments); each must get the same answer
/// on aarch64 as on x86_64.
const ESCAPES: &[(&str, [u64; 2])] = &[
    ("unshare", [0x1000_0000, 0]),     // CLONE_NEWUSER
    ("clone", [0x1000_0011, 0]),       // CLONE_NEWUSER|SIGCHLD
    ("clone", [0x4000_0011, 0]),       // CLONE_NEWNET|SIGCHLD
    ("personality", [0x0040_0000, 0]), // ADDR_NO_RANDOMIZE
    ("socket", [17, 3]),               // AF_PACKET, SOCK_RAW
    ("socket", [2, 3]),                // AF_INET, SOCK_RAW
    ("socket", [16, 3]),               // AF_NETLINK, SOCK_RAW
    ("clone3", [0, 0]),
];

/// The answers of `x86` (for x86_64 data) and `arm` (for aarch64 data) to every escape.
fn escape_answers(x86: &[Insn], arm: &[Insn]) -> Vec<(&'static str, u32, u32)> {
    let (xt, at) = (
        judge::libseccomp_names("amd64"),
        judge::libseccomp_names("arm64"),
    );
    let nr = |t: &BTreeMap<u32, String>, name: &str| {
        t.iter()
            .find(|(_, n)| *n == name)
            .map(|(nr, _)| *nr)
            .expect("a number")
    };
    ESCAPES
        .iter()
        .map(|(name, [a0, a1])| {
            let args = [*a0, *a1, 0, 0, 0, 0];
            let on_x86 = judge::run(
                x86,
                &SeccompData::new(AUDIT_ARCH_X86_64, nr(&xt, name), args),
            );
            let on_arm = judge::run(
                arm,
                &SeccompData::new(AUDIT_ARCH_AARCH64, nr(&at, name), args),
            );
            (*name, on_x86, on_arm)
        })
        .collect()
}

#[test]
fn docker_default_on_aarch64_is_what_libseccomp_compiles() {
    let ctx = Context::docker_default();
    let arm = judge::compile(Path::new(DEFAULT), "arm64");
    let allowed = allowed_by(&arm, "arm64", &probes(Path::new(DEFAULT)));
    let ours: BTreeSet<String> = Profile::docker_default()
        .allowed(Abi::Aarch64, &ctx)
        .keys()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(ours.len(), 267);
    // Calls newer than libseccomp 2.5.4 are skipped by it (and so by runc linked with it).
    let known: BTreeSet<String> = judge::libseccomp_names("arm64").into_values().collect();
    let ours_known: BTreeSet<String> = ours.intersection(&known).cloned().collect();
    assert_eq!(allowed, ours_known);
    eprintln!(
        "Docker's default on aarch64: {} allowed by libseccomp's filter, {} by profile's reading ({} too new for libseccomp 2.5.4)",
        allowed.len(),
        ours.len(),
        ours.len() - ours_known.len()
    );
    assert!(!allowed.contains("arch_prctl") && allowed.contains("ppoll"));
    // Docker's own rules hold there as on x86_64: namespaces and ASLR off denied, raw and
    // netlink sockets allowed (CAP_NET_RAW is a default capability).
    let x86 = judge::compile(Path::new(DEFAULT), "amd64");
    for (name, on_x86, on_arm) in escape_answers(&x86, &arm) {
        assert_eq!(on_x86, on_arm, "{name}");
        assert_eq!(
            judge::allows(on_arm),
            name == "socket",
            "{name} {on_arm:#x}"
        );
    }
}

/// Derives, with the library, the arm64 side of the single-architecture profile at `single`.
fn derive(dir: &Scratch, name: &str, single: &Path) -> std::path::PathBuf {
    let ctx = Context::docker_default();
    let p = tracer::formats::read_profile(single).expect("a profile");
    let both = BTreeSet::from([Arch::Amd64, Arch::Arm64]);
    let (multi, _) = p.for_arches(&both, &Profile::docker_default(), &ctx);
    assert!(multi.widenings(&Profile::docker_default(), &ctx).is_empty());
    let path = dir.path(&format!("{name}.multi.json"));
    std::fs::write(&path, multi.to_json().expect("JSON")).expect("written");
    path
}

/// Judges the multi-architecture profile at `path` against the single-architecture one at
/// `single`: the x86_64 filter is byte for byte the single profile's, aarch64 allows exactly
/// the counterparts of what x86_64 allows, and every escape gets the same denial on both.
fn judge_derived(name: &str, single: &Path, path: &Path) -> BTreeSet<String> {
    let x86_single = judge::compile(single, "amd64");
    assert!(
        judge::compile(path, "amd64") == x86_single,
        "{name}: the x86_64 filter is not the single profile's"
    );
    let on_x86 = allowed_by(&x86_single, "amd64", &probes(single));
    let arm = judge::compile(path, "arm64");
    let on_arm = allowed_by(&arm, "arm64", &probes(path));

    let arm_names: BTreeSet<String> = judge::libseccomp_names("arm64").into_values().collect();
    let mut mapped = BTreeSet::new();
    for n in &on_x86 {
        match counterparts::on_aarch64(n) {
            Some(OnAarch64::Replaced(row)) => {
                mapped.extend(row.aarch64.iter().map(|c| c.name.to_string()));
            }
            _ => {
                mapped.insert(n.clone());
            }
        }
    }
    mapped.retain(|n| arm_names.contains(n));
    assert_eq!(
        on_arm, mapped,
        "{name}: aarch64 allows the counterparts, nothing else"
    );
    for (escape, x, a) in escape_answers(&x86_single, &arm) {
        assert_eq!(x, a, "{name}: {escape}");
        assert!(!judge::allows(a), "{name}: {escape} {a:#x}");
    }
    for must in ["openat", "newfstatat", "getdents64"] {
        assert!(on_arm.contains(must), "{name}: {must}");
    }
    assert!(!on_arm.contains("mkdirat"), "{name}: never made");
    assert!(!arm_names.contains("arch_prctl"));
    eprintln!(
        "{name}: {} aarch64 numbers judged, {} allowed, the rest denied; x86_64 {} allowed, filter unchanged",
        judge::libseccomp_names("arm64")
            .keys()
            .max()
            .copied()
            .unwrap_or(0)
            + 65,
        on_arm.len(),
        on_x86.len(),
    );
    on_arm
}

#[test]
fn the_example_profiles_hold_on_arm64() {
    let dir = Scratch::new("arches-examples");
    for name in ["hello", "web"] {
        let single = Path::new(PROFILES).join(format!("profile-example-{name}-latest.json"));
        let on_arm = judge_derived(name, &single, &derive(&dir, name, &single));
        // hello reads a link and sets up TLS on x86_64: readlinkat there, nothing for TLS.
        if name == "hello" {
            assert!(on_arm.contains("readlinkat") && !on_arm.contains("readlink"));
        }
    }
}

#[test]
fn a_busybox_training_holds_on_arm64() {
    if !privileged("a_busybox_training_holds_on_arm64") {
        return;
    }
    let dir = Scratch::new("arches-train");
    let (multi, report, out) = train(
        &dir,
        "busybox",
        &["--arch", "amd64,arm64", "--network", "none"],
        &["sh", "-c", "ls -l /; cat /www/index.html"],
    );
    assert!(out.status.success(), "{}", output_text(&out));
    // The amd64 profile of the same recording: the multi-architecture one without what
    // Docker keeps on arm64 only, as the engine on amd64 hands it to runc.
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&multi).expect("profile")).expect("JSON");
    json["architectures"] = serde_json::json!(["SCMP_ARCH_X86_64"]);
    let rules = json["syscalls"].as_array_mut().expect("rules");
    rules.retain(|r| r["includes"]["arches"] != serde_json::json!(["arm64"]));
    let single = dir.path("busybox.amd64.json");
    std::fs::write(&single, json.to_string()).expect("written");
    judge_derived("busybox", &single, &multi);
    // The report tells observed from derived, and says to verify on arm64 first.
    let r = report.expect("a report");
    let arches = &r["arches"];
    assert_eq!(arches["arches"][1]["arch"], "arm64", "{arches:#}");
    let derived = arches["derived"].as_array().expect("derived");
    assert!(
        derived
            .iter()
            .any(|d| d["from"] == "readlink" || d["from"] == "stat" || d["from"] == "lstat"),
        "{arches:#}"
    );
    assert!(
        arches["advice"]
            .as_str()
            .unwrap_or_default()
            .contains("verify")
    );
}

/// The command line: merge and convert derive for arm64, diff names the architecture of each line,
/// report separates the derived names, and the OCI format is written per platform.
#[test]
fn merge_diff_and_report_read_and_write_both_architectures() {
    let dir = Scratch::new("arches-cli");
    let hello = format!("{PROFILES}/profile-example-hello-latest.json");
    let web = format!("{PROFILES}/profile-example-web-latest.json");
    let (single, multi) = (dir.path("s.json"), dir.path("m.json"));
    let (s, m) = (single.to_str().unwrap(), multi.to_str().unwrap());
    profile_ok(&["merge", &hello, &web, "-o", s]);
    profile_ok(&["merge", &hello, &web, "--arch", "amd64,arm64", "-o", m]);
    judge_derived("merged", &single, &multi);
    // convert derives as merge does.
    let converted = dir.path("c.json");
    let c = converted.to_str().unwrap();
    profile_ok(&["convert", &hello, "--arch", "amd64,arm64", "-o", c]);
    judge_derived("converted", Path::new(&hello), &converted);
    let out = profile(&["diff", s, m]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let plus: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("+ "))
        .map(String::from)
        .collect();
    assert!(
        plus.contains(&"+ readlinkat (aarch64)".to_string()),
        "{plus:?}"
    );
    assert!(plus.iter().all(|l| l.ends_with("(aarch64)")), "{plus:?}");
    // Within Docker's default on both platforms.
    let out = profile(&["diff", DEFAULT, m]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let report: serde_json::Value =
        serde_json::from_slice(&profile_ok(&["report", m, "--format", "json"]).stdout).unwrap();
    let derived = report["arches"]["derived_names"].as_array().unwrap();
    assert!(
        derived.contains(&serde_json::json!("readlinkat (aarch64)")),
        "{report:#}"
    );
    assert!(!derived.contains(&serde_json::json!("read (aarch64)")));
    assert_eq!(report["arches"]["arches"][1]["docker_default_allowed"], 267);
    // OCI: one file per platform, each holding on its own; stdout can't hold two.
    let oci = dir.path("app.json");
    let both_oci = ["--arch", "amd64,arm64", "--format", "oci"];
    let inputs = [hello.as_str(), web.as_str()];
    let merge = |more: &[&str]| profile(&[&["merge"][..], &inputs, &both_oci, more].concat());
    let out = merge(&["-o", oci.to_str().unwrap()]);
    assert!(out.status.success(), "{}", output_text(&out));
    let (arm, amd) = (dir.path("app.arm64.json"), dir.path("app.amd64.json"));
    assert!(!oci.exists() && amd.exists());
    let on_arm = allowed_by(&judge::compile(&arm, "arm64"), "arm64", &probes(&arm));
    assert!(on_arm.contains("readlinkat") && on_arm.contains("openat"));
    assert!(judge::compile(&amd, "amd64") == judge::compile(&single, "amd64"));
    let out = merge(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(output_text(&out).contains("--arch-union"));
}

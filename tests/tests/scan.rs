//! `profile scan`: the ceilings of real binaries (Debian's busybox-static, static C programs, a
//! Go program, Debian's caddy) are precise where the source says what they call, and sound:
//! whatever `profile run` and `profile train` observe of them is inside their ceiling.
use std::{collections::BTreeSet, path::Path};

use profile_tests::{
    ATTACK, CALLS, EMPTY, GOFILES, INT80, SYSLOOP, Scratch, docker, output_text, privileged,
    profile, report, strings, test_image, train,
};
use serde_json::Value;

const BUSYBOX: &str = "/bin/busybox";
const CADDY: &str = "/usr/bin/caddy";

/// `profile scan --format json ARGS`, which must succeed.
fn scan(args: &[&str]) -> Value {
    let mut all = vec!["scan", "--format", "json"];
    all.extend_from_slice(args);
    let out = profile(&all);
    assert!(
        out.status.success(),
        "profile {all:?}: {}",
        output_text(&out)
    );
    serde_json::from_slice(&out.stdout).expect("scan JSON")
}

/// The scanned binary at `path` in a scan.
fn binary<'a>(scan: &'a Value, path: &str) -> &'a Value {
    scan["binaries"]
        .as_array()
        .expect("binaries")
        .iter()
        .find(|b| b["path"] == path)
        .unwrap_or_else(|| panic!("{path} not in the scan: {scan:#}"))
}

/// The names of an ABI in a ceiling (or a union).
fn names(ceiling: &Value, abi: &str) -> BTreeSet<String> {
    strings(&ceiling["syscalls"][abi])
}

/// The paths of a scan's binaries, in its order.
fn paths(scan: &Value) -> Vec<&str> {
    scan["binaries"]
        .as_array()
        .expect("binaries")
        .iter()
        .filter_map(|b| b["path"].as_str())
        .collect()
}

/// The syscalls a JSON report observed, as (abi, name, first program).
fn observed(report: &Value) -> Vec<(String, String, String)> {
    report["syscalls"]
        .as_array()
        .expect("syscalls")
        .iter()
        .map(|s| {
            let text = |k: &str| s[k].as_str().unwrap_or_default().to_string();
            (text("abi"), text("name"), text("first_program"))
        })
        .collect()
}

#[test]
fn kinds_and_deterministic_output() {
    let args = [BUSYBOX, GOFILES, CALLS, CADDY];
    let first = profile(&["scan", "--format", "json", BUSYBOX, GOFILES, CALLS, CADDY]);
    assert!(first.status.success(), "{}", output_text(&first));
    let again = profile(&["scan", "--format", "json", BUSYBOX, GOFILES, CALLS, CADDY]);
    assert_eq!(first.stdout, again.stdout, "the JSON is stable");
    let s = scan(&args);
    let mut sorted = paths(&s);
    sorted.sort();
    assert_eq!(paths(&s), sorted, "sorted by path");
    assert_eq!(binary(&s, BUSYBOX)["kind"], "static");
    assert_eq!(binary(&s, CALLS)["kind"], "static");
    let go = binary(&s, GOFILES);
    assert_eq!(go["kind"], "go");
    assert_eq!(go["static"], true);
    assert!(
        go["go"]["version"]
            .as_str()
            .is_some_and(|v| v.starts_with("go1.")),
        "{go}"
    );
    assert_eq!(go["go"]["module"], "profile.test/gofiles");
    // Debian's caddy is Go with cgo: its ceiling leaves out what libc does for it.
    let caddy = binary(&s, CADDY);
    assert_eq!(caddy["kind"], "go");
    assert_eq!(caddy["static"], false);
    assert_eq!(caddy["ceiling"]["sound"], false);
    assert!(
        caddy["ceiling"]["not_sound"][0]
            .as_str()
            .is_some_and(|w| w.contains("dynamically")),
        "{}",
        caddy["ceiling"]["not_sound"]
    );
    assert_eq!(s["union"]["sound"], false);
    // Docker's CLI is a position-independent Go binary linked by the system linker: its
    // function table is found in read-only data, so its functions have their Go names.
    let docker_cli = scan(&["/usr/bin/docker"]);
    let cli = binary(&docker_cli, "/usr/bin/docker");
    assert_eq!(cli["kind"], "go");
    let wrappers = cli["ceiling"]["wrappers"].as_array().expect("wrappers");
    assert!(
        wrappers.iter().any(|w| w["function"] == "syscall.Syscall6"),
        "{wrappers:?}"
    );
    for text_format in ["text", "md"] {
        let out = profile(&["scan", "--format", text_format, GOFILES]);
        assert!(out.status.success(), "{}", output_text(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains("futex"));
    }
}

#[test]
fn dynamic_executables_have_no_ceiling() {
    let s = scan(&["/bin/true"]);
    let t = binary(&s, "/bin/true");
    assert_eq!(t["kind"], "dynamic");
    assert!(t["ceiling"].is_null());
    assert_eq!(t["note"], "no ceiling (dynamic, libc)");
    assert_eq!(s["union"]["no_ceiling"][0]["path"], "/bin/true");
    assert_eq!(s["union"]["sound"], false);
    let out = profile(&["scan", "/etc/hostname"]);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an ELF file"));
}

/// Precision: the ceiling of a static C program is exactly what its source calls plus what
/// the C library's startup and exit do (the ceiling of a program that does nothing else).
#[test]
fn static_c_ceiling_is_its_source_plus_libc_startup_and_exit() {
    let s = scan(&[EMPTY, CALLS]);
    let empty = &binary(&s, EMPTY)["ceiling"];
    let calls = &binary(&s, CALLS)["ceiling"];
    assert_eq!(empty["sound"], true, "{empty:#}");
    let added: BTreeSet<String> = names(calls, "x86_64")
        .difference(&names(empty, "x86_64"))
        .cloned()
        .collect();
    let expected: BTreeSet<String> = ["getppid", "getsid", "sync"].map(String::from).into();
    assert_eq!(added, expected);
    assert!(names(empty, "x86_64").is_subset(&names(calls, "x86_64")));
    assert!(names(empty, "x86_64").contains("exit_group"));
    // getsid goes through libc's syscall(), which takes the number as its first argument.
    let wrappers = calls["wrappers"].as_array().expect("wrappers");
    assert!(
        wrappers.iter().any(|w| w["argument"] == "rdi"),
        "{wrappers:?}"
    );
}

/// Precision: a Go program that never touches the network can't open a socket.
#[test]
fn go_program_without_network_has_no_socket() {
    let s = scan(&[GOFILES]);
    let ceiling = &binary(&s, GOFILES)["ceiling"];
    assert_eq!(ceiling["sound"], true, "{ceiling:#}");
    let calls = names(ceiling, "x86_64");
    for net in ["socket", "connect", "bind", "listen", "accept4", "sendto"] {
        assert!(!calls.contains(net), "{net} in {calls:?}");
    }
    for needed in [
        "openat",
        "read",
        "write",
        "futex",
        "clone",
        "rt_sigreturn",
        "kill",
    ] {
        assert!(calls.contains(needed), "{needed} not in {calls:?}");
    }
}

/// Runs `profile run -- ARGV` (whatever its exit status) and returns what it observed.
fn run(dir: &Scratch, name: &str, argv: &[&str], env_path: Option<&Path>) -> Value {
    let report_path = dir.path(&format!("{name}.json"));
    let profile_path = dir.path(&format!("{name}.profile.json"));
    let mut cmd = std::process::Command::new(profile_tests::profile_bin());
    cmd.args(["run", "-o"])
        .arg(&profile_path)
        .arg("--report")
        .arg(&report_path)
        .arg("--")
        .args(argv)
        .current_dir(&dir.0);
    if let Some(path) = env_path {
        cmd.env("PATH", path);
    }
    let out = cmd.output().expect("profile run");
    assert!(
        report_path.exists(),
        "{name}: no report: {}",
        output_text(&out)
    );
    report(&report_path)
}

/// Soundness: everything a run observed is in the ceiling, but the `execve` that started the
/// program, which `profile run`'s launcher makes.
fn assert_within(name: &str, observed: &[(String, String, String)], ceiling: &Value) {
    let mut outside = Vec::new();
    for (abi, call, first) in observed {
        if first == "profile" {
            assert_eq!(call, "execve", "{name}: the launcher made {abi} {call}");
            continue;
        }
        if !names(ceiling, abi).contains(call) {
            outside.push(format!("{abi} {call} (first by {first})"));
        }
    }
    assert!(
        outside.is_empty(),
        "{name}: observed outside the ceiling: {outside:?}"
    );
}

#[test]
fn busybox_applets_stay_within_the_ceiling() {
    if !privileged("busybox_applets_stay_within_the_ceiling") {
        return;
    }
    let s = scan(&[BUSYBOX]);
    let ceiling = &binary(&s, BUSYBOX)["ceiling"];
    // Every site resolved, glibc's set*id broadcast (the number in a struct) included.
    assert_eq!(ceiling["sound"], true, "{ceiling:#}");
    let dir = Scratch::new("scan-busybox");
    // Every program these scripts start is busybox: a PATH of its applets, nothing else.
    let bin = dir.path("bin");
    std::fs::create_dir_all(&bin).expect("bin dir");
    let applets = std::process::Command::new(BUSYBOX)
        .arg("--list")
        .output()
        .expect("busybox --list");
    for applet in String::from_utf8_lossy(&applets.stdout).lines() {
        let _ = std::os::unix::fs::symlink(BUSYBOX, bin.join(applet));
    }
    let port = profile_tests::free_port().to_string();
    let scripts = [
        "ls -la / /proc/self/fd; cat /etc/hostname; echo hi | wc -c",
        "seq 1 500 | sort -rn | head -3; seq 5 | awk '{s+=$1} END {print s}'; echo abc | sed s/b/x/ | tr a-z A-Z; expr 6 \\* 7; printf '%s\\n' x | cut -c1; grep -c root /etc/passwd",
        "mkdir -p d/e; echo x > d/f; cp d/f d/g; mv d/g d/h; ln -s f d/l; readlink d/l; chmod 600 d/f; stat d/f; touch -d 2020-01-01 d/f; du -s d; md5sum d/f; sha256sum d/f; tar cf t.tar d; gzip t.tar; gunzip t.tar.gz; mkdir x; tar xf t.tar -C x; diff -r d x/d; rm -rf d x t.tar",
        "dd if=/dev/zero of=z bs=1k count=64 2>/dev/null; od -c z | tail -1; truncate -s 1 z; sync; fsync z; mktemp -p .; flock z true; rm -f z tmp.*",
        "sleep 0.1 & wait; timeout 1 sleep 5; trap 'echo got usr1' USR1; kill -USR1 $$; kill -0 $$; id; uname -a; date; hostname; nproc; free; uptime; df /; ps >/dev/null; env -i A=1 printenv A; nice -n 5 true; ionice -c 3 true; taskset -p $$; chrt -p $$",
        "wget -q -T 1 -O - http://127.0.0.1:1/ ; nc -w 1 127.0.0.1 1 </dev/null; ping -c 1 -W 1 127.0.0.1; echo done",
        &format!(
            "mkdir -p www; echo page > www/index.html; httpd -p 127.0.0.1:{port} -h www; sleep 0.3; wget -q -O - http://127.0.0.1:{port}/; pkill -f 'httpd -p 127.0.0.1:{port}'; rm -rf www"
        ),
        "find /etc -maxdepth 1 -name '*.conf' | xargs ls -l >/dev/null; top -b -n 1 >/dev/null; watch -n 1 -t true & sleep 0.3; kill $!; xxd /etc/hostname | head -1; base64 /etc/hostname; ls /nonexistent",
    ];
    let mut all = BTreeSet::new();
    for (k, script) in scripts.iter().enumerate() {
        let name = format!("busybox-{k}");
        let rep = run(&dir, &name, &["sh", "-c", script], Some(&bin));
        let seen = observed(&rep);
        assert!(seen.len() > 15, "{name}: {seen:?}");
        assert_within(&name, &seen, ceiling);
        all.extend(seen.into_iter().map(|(abi, call, _)| (abi, call)));
    }
    eprintln!(
        "busybox: {} distinct syscalls observed over {} runs, all within its ceiling of {}",
        all.len(),
        scripts.len(),
        names(ceiling, "x86_64").len()
    );
}

#[test]
fn static_and_go_programs_stay_within_their_ceilings() {
    if !privileged("static_and_go_programs_stay_within_their_ceilings") {
        return;
    }
    let s = scan(&[GOFILES, SYSLOOP, INT80, ATTACK, CALLS]);
    let dir = Scratch::new("scan-programs");
    std::fs::write(dir.path("input"), vec![b'x'; 100_000]).expect("input");
    let input = dir.path("input");
    let input = input.to_str().expect("utf-8");
    let runs: [(&str, &str, Vec<&str>); 9] = [
        ("go", GOFILES, vec![input]),
        ("go-missing", GOFILES, vec!["/nonexistent/file"]),
        ("sysloop-threads", SYSLOOP, vec!["threads", "4", "100"]),
        ("sysloop-fork", SYSLOOP, vec!["fork", "3", "10"]),
        ("sysloop-mkdir", SYSLOOP, vec!["mkdir", "made"]),
        ("sysloop-getsid", SYSLOOP, vec!["getsid", "3"]),
        ("int80", INT80, vec!["getppid", "3"]),
        ("attack", ATTACK, vec!["benign"]),
        ("calls", CALLS, vec![]),
    ];
    for (name, program, args) in runs {
        let mut argv = vec![program];
        argv.extend(args);
        let rep = run(&dir, name, &argv, None);
        let ceiling = &binary(&s, program)["ceiling"];
        assert_eq!(ceiling["sound"], true, "{program}: {ceiling:#}");
        let seen = observed(&rep);
        assert_within(name, &seen, ceiling);
        if name == "int80" {
            assert!(
                seen.iter()
                    .any(|(abi, call, _)| abi == "i386" && call == "getppid"),
                "{seen:?}"
            );
            assert!(names(ceiling, "i386").contains("getppid"));
        }
    }
}

#[test]
fn image_is_read_through_the_engine_without_running() {
    if !privileged("image_is_read_through_the_engine_without_running") {
        return;
    }
    let ctx = Scratch::new("scan-image-ctx");
    std::fs::copy("/bin/true", ctx.path("dynamic-true")).expect("/bin/true");
    std::fs::copy(GOFILES, ctx.path("gofiles")).expect("gofiles");
    // A layer that removes a file, one that hard-links another, and files of each kind.
    let dockerfile = format!(
        "FROM {}\n\
         RUN [\"/bin/busybox\", \"rm\", \"/bin/attack\"]\n\
         RUN [\"/bin/busybox\", \"ln\", \"/bin/sysloop\", \"/bin/sysloop-link\"]\n\
         COPY dynamic-true /usr/bin/dynamic-true\n\
         COPY gofiles /bin/gofiles\n",
        test_image()
    );
    std::fs::write(ctx.path("Dockerfile"), dockerfile).expect("Dockerfile");
    let image = format!("profile-test/scan:{}", std::process::id());
    let built = std::process::Command::new("docker")
        .args(["build", "-q", "-t", &image])
        .arg(&ctx.0)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .expect("docker build");
    assert!(built.status.success(), "{}", output_text(&built));
    let containers = |image: &str| {
        let out = docker(&["ps", "-a", "-q", "--filter", &format!("ancestor={image}")]);
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    let before = containers(&image);
    let s = scan(&["--image", &image]);
    let again = profile(&["scan", "--format", "json", "--image", &image]);
    let _ = docker(&["rmi", "-f", &image]);
    assert_eq!(containers(&image), before, "nothing was created");
    assert_eq!(
        serde_json::from_slice::<Value>(&again.stdout).expect("JSON"),
        s,
        "the same image scans the same"
    );
    assert_eq!(
        paths(&s),
        [
            "/bin/busybox",
            "/bin/gofiles",
            "/bin/sysloop",
            "/usr/bin/dynamic-true"
        ],
        "the removed /bin/attack is gone; symlinks are no executables"
    );
    assert_eq!(
        binary(&s, "/bin/sysloop")["aliases"][0],
        "/bin/sysloop-link"
    );
    assert_eq!(binary(&s, "/bin/gofiles")["kind"], "go");
    let dynamic = binary(&s, "/usr/bin/dynamic-true");
    assert_eq!(dynamic["note"], "no ceiling (dynamic, libc)");
    assert_eq!(s["union"]["no_ceiling"][0]["path"], "/usr/bin/dynamic-true");
    assert_eq!(s["union"]["sound"], false);
    // The image's busybox is the host's: the same ceiling.
    let host = scan(&[BUSYBOX]);
    assert_eq!(
        binary(&s, "/bin/busybox")["ceiling"]["syscalls"],
        binary(&host, BUSYBOX)["ceiling"]["syscalls"]
    );
    let union = names(&s["union"], "x86_64");
    assert!(names(&binary(&s, "/bin/gofiles")["ceiling"], "x86_64").is_subset(&union));
}

#[test]
fn training_a_scratch_image_stays_within_its_ceiling() {
    if !privileged("training_a_scratch_image_stays_within_its_ceiling") {
        return;
    }
    let s = scan(&["--image", test_image()]);
    // busybox, sysloop and attack: every executable of the image has a sound ceiling.
    assert_eq!(s["union"]["sound"], true, "{:#}", s["union"]);
    let dir = Scratch::new("scan-train");
    let script = "ls -la /; cat /www/index.html; echo hi | wc -c; sysloop getppid 3; sysloop threads 2 5; attack benign; httpd -p 8080 -h /www; sleep 0.2; wget -q -O - http://127.0.0.1:8080/; kill $(pidof httpd)";
    let (_, rep, out) = train(&dir, "scratch", &[], &["sh", "-c", script]);
    let rep = rep.unwrap_or_else(|| panic!("no report: {}", output_text(&out)));
    let union = &s["union"];
    let mut outside = Vec::new();
    for (abi, call, first) in observed(&rep) {
        // What the runtime's init does under the filter before the image's program starts.
        if first.starts_with("runc") {
            continue;
        }
        if !names(union, &abi).contains(&call) {
            outside.push(format!("{abi} {call} (first by {first})"));
        }
    }
    assert!(
        outside.is_empty(),
        "outside the image's ceiling: {outside:?}"
    );
}

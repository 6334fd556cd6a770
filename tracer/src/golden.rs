//! Golden files of what `profile` writes for machines and people: the JSON, text and Markdown
//! reports and the profile's layout in each format. A change to any of them is a deliberate
//! diff of `tracer/tests/golden/`: rerun with `PROFILE_UPDATE_GOLDEN=1` and review it.
use std::{collections::BTreeSet, path::PathBuf};

use crate::{
    absorb::{AbsorbReport, Absorption, Selection, Tally, Whereabouts},
    audit::LogLine,
    formats::OciSeccomp,
    names::{Abi, Arch, SyscallId},
    recorder::{FirstProgram, Observed, Snapshot},
    report::{
        CeilingLine, DiffReport, Index, IndexRow, PhaseLine, ProgramsRun, Render as _, Report,
        RunLine, Verification, VerificationStatus,
    },
    runtime::{Runtime, tail},
    scan::coverage::{Coverage, ProgramCoverage, Unseen},
    seccomp::{ArgValues, Base, Context, Diff, LearnArgs, Learned, Profile, learn},
    session::StoppedBy,
    session::{Exercised, ProbeReport, ProbeRequest, Unexercised},
};

/// Compares `actual` with the golden file `name`, or rewrites the file when asked to.
fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("PROFILE_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().expect("a directory")).expect("golden directory");
        std::fs::write(&path, actual).expect("golden file written");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (PROFILE_UPDATE_GOLDEN=1 writes it)",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{name} differs from {} (PROFILE_UPDATE_GOLDEN=1 rewrites it; review the diff):\n{actual}",
        path.display()
    );
}

/// Docker's default capabilities on a fixed kernel, so that no golden file depends on the
/// machine's.
fn ctx() -> Context {
    Context {
        kernel: (6, 18),
        ..Context::docker_default()
    }
}

fn id(abi: Abi, nr: u32) -> SyscallId {
    SyscallId { abi, nr }
}

fn seen(count: u64, comm: &str, pid: u32) -> Observed {
    Observed {
        count,
        first: Some(FirstProgram {
            comm: comm.into(),
            pid,
        }),
    }
}

/// A web server's recording: plain calls, learned socket arguments, an i386 call, calls
/// Docker's default denies or answers with ENOSYS, a few the kernel side could not name, and
/// the container runtime's calls before it handed over.
fn snapshot() -> Snapshot {
    let mut snap = Snapshot::default();
    for (nr, count, comm) in [
        (0, 120, "httpd"),         // read
        (1, 80, "httpd"),          // write
        (41, 3, "httpd"),          // socket
        (49, 1, "httpd"),          // bind
        (50, 1, "httpd"),          // listen
        (59, 1, "runc:[2:INIT]"),  // execve
        (110, 1, "runc:[2:INIT]"), // getppid
        (135, 1, "httpd"),         // personality
        (231, 1, "httpd"),         // exit_group
        (272, 2, "httpd"),         // unshare: Docker's default denies it
        (435, 1, "httpd"),         // clone3: ENOSYS under Docker's default
        (288, 40, "httpd"),        // accept4
        (202, 7, "httpd"),         // futex
        (15, 2, "runc:[2:INIT]"),  // rt_sigreturn
        (257, 12, "httpd"),        // openat
        (3, 12, "httpd"),          // close
    ] {
        snap.syscalls
            .insert(id(Abi::X86_64, nr), seen(count, comm, 7));
    }
    snap.syscalls.insert(id(Abi::I386, 64), seen(4, "int80", 9)); // getppid
    snap.args.insert(
        id(Abi::X86_64, 41),
        ArgValues {
            tuples: [[2, 1], [10, 1], [1, 1]].into_iter().collect(),
            overflowed: false,
        },
    );
    snap.args.insert(
        id(Abi::X86_64, 135),
        ArgValues {
            tuples: [[0xffff_ffff, 0]].into_iter().collect(),
            overflowed: false,
        },
    );
    for (nr, count) in [(126, 1), (72, 3), (3, 4), (59, 1)] {
        // capset, fcntl, close, execve
        snap.runtime.insert(nr, seen(count, "runc:[2:INIT]", 1));
    }
    snap.out_of_range = 2;
    snap.dropped_first = 1;
    snap.programs = [
        ("/bin/sh".to_string(), 2),
        ("/usr/sbin/httpd".to_string(), 1),
    ]
    .into();
    snap
}

/// What training didn't see of the programs that ran: the server's ceiling is sound, the
/// shell has none.
fn coverage() -> Coverage {
    let unseen = |name: &str, dangerous: Option<&'static str>| Unseen {
        abi: Abi::X86_64,
        name: name.into(),
        dangerous,
        // The learned profile allows this one without training having seen it.
        allowed: name == "inotify_add_watch",
    };
    Coverage {
        bounded: false,
        programs: vec![
            ProgramCoverage {
                path: "/bin/sh".into(),
                no_bound: Some("dynamic: no ceiling".into()),
                ceiling: 0,
                observed: 0,
                unseen: Vec::new(),
            },
            ProgramCoverage {
                path: "/usr/sbin/httpd".into(),
                no_bound: None,
                ceiling: 17,
                observed: 14,
                unseen: vec![
                    unseen("inotify_add_watch", None),
                    unseen("ptrace", Some("traces and modifies other processes")),
                    unseen("mkdirat", None),
                ],
            },
        ],
    }
}

/// What a training learns from `snap`: with runc 1.1's tail, as under Docker Engine 20.10.
fn learned(snap: &Snapshot) -> Learned {
    let mut obs = snap.observation();
    obs.required = tail(&Runtime::new("runc", Some("1.1.5+ds1"))).calls;
    learn(&obs, &Profile::docker_default(), &ctx(), LearnArgs::Default)
}

/// A training of three runs, probed over HTTP and verified afterwards.
fn training_report() -> Report {
    let snap = snapshot();
    let mut r = Report::new(
        "web:1.0 httpd -f",
        false,
        &snap,
        &learned(&snap),
        "docker-default",
    );
    r.exit_code = Some(0);
    r.stopped_by = Some(StoppedBy::Probe);
    r.duration_seconds = 12.3;
    r.ran.coverage = Some(coverage());
    r.ran.ceiling = Some(CeilingLine {
        added: vec!["inotify_add_watch".into(), "mkdirat".into()],
        complete: false,
    });
    r.runs = vec![
        RunLine {
            run: 1,
            distinct: 15,
            added: 15,
            added_names: Vec::new(),
            exit_code: Some(0),
            stopped_by: Some(StoppedBy::Probe),
        },
        RunLine {
            run: 2,
            distinct: 16,
            added: 1,
            added_names: vec!["clone3".into()],
            exit_code: Some(0),
            stopped_by: Some(StoppedBy::Probe),
        },
        RunLine {
            run: 3,
            distinct: 14,
            added: 0,
            added_names: Vec::new(),
            exit_code: Some(0),
            stopped_by: Some(StoppedBy::Probe),
        },
    ];
    r.probe = Some(ProbeReport {
        requests: vec![
            ProbeRequest {
                method: "GET".into(),
                url: "http://127.0.0.1:18080/".into(),
                variant: None,
                status: Some(200),
                error: None,
            },
            ProbeRequest {
                method: "GET".into(),
                url: "http://127.0.0.1:18080/".into(),
                variant: Some("range".into()),
                status: Some(206),
                error: None,
            },
            ProbeRequest {
                method: "POST".into(),
                url: "http://127.0.0.1:18080/form".into(),
                variant: Some("body".into()),
                status: None,
                error: Some("connection reset".into()),
            },
        ],
        skipped: vec!["127.0.0.1:15353 (53/tcp): neither HTTP nor HTTPS".into()],
    });
    r.phases = vec![
        PhaseLine {
            phase: "start".into(),
            added: vec!["execve".into(), "read".into()],
        },
        PhaseLine {
            phase: "probe".into(),
            added: vec!["accept4".into()],
        },
        PhaseLine {
            phase: "stop".into(),
            added: Vec::new(),
        },
    ];
    r.verified = Some(true);
    r.verified_by = Some(Exercised {
        by: "the HTTP probe (57 requests)".into(),
        training_own: true,
        unexercised: Vec::new(),
    });
    r.verification = Some(VerificationStatus::Passed);
    r.warnings
        .push("run 2: the workload exited 1: the profile covers only what ran until then".into());
    r
}

#[test]
fn the_training_report() {
    let r = training_report();
    golden("training-report.json", &r.json().expect("JSON"));
    golden("training-report.txt", &r.text());
    golden("training-report.md", &r.markdown());
    golden("training-summary.md", &r.summary_markdown());
}

/// The training's profile, with calls aarch64 names otherwise (open, poll) or lacks
/// (arch_prctl), derived for arm64 too and written as one Docker profile.
#[test]
fn the_report_of_a_profile_for_two_platforms() {
    let mut snap = snapshot();
    for nr in [2, 7, 158] {
        snap.syscalls
            .insert(id(Abi::X86_64, nr), seen(1, "httpd", 7));
    }
    let mut learned = learned(&snap);
    let bound = Base::DockerDefault.bound(false);
    let arches = BTreeSet::from([Arch::Amd64, Arch::Arm64]);
    let derived = bound
        .derive(&mut learned.profile, &arches, &ctx())
        .expect("within Docker's default on both");
    let mut r = Report::new("web:1.0", false, &snap, &learned, "docker-default");
    r.exit_code = Some(0);
    let written = crate::formats::Rendering::default().written_as(None);
    r.for_arches(&learned.profile, &derived, written);
    golden("arches-report.json", &r.json().expect("JSON"));
    golden("arches-report.txt", &r.text());
    golden("arches-report.md", &r.markdown());
    golden(
        "arches-profile.json",
        &learned.profile.to_json().expect("JSON"),
    );
}

#[test]
fn the_report_of_a_profile_file() {
    let mut wide = Profile::docker_default();
    wide.syscalls[0].names.push("no_such_call".into());
    let r = Report::for_profile("wide.json", &wide);
    golden("profile-report.json", &r.json().expect("JSON"));
    golden("profile-report.txt", &r.text());
    golden("profile-report.md", &r.markdown());
}

#[test]
fn the_verification_report() {
    let mut snap = Snapshot::default();
    snap.denied
        .insert(id(Abi::X86_64, 83), seen(3, "mkdir", 11)); // mkdir
    snap.denied.insert(id(Abi::I386, 4), seen(1, "int80", 12)); // write
    snap.denied
        .insert(id(Abi::X86_64, 41), seen(1, "httpd", 13)); // socket
    snap.denied_args.insert(
        id(Abi::X86_64, 41),
        ArgValues {
            tuples: [[17, 3]].into_iter().collect(),
            overflowed: false,
        },
    );
    snap.out_of_range_denied = 1;
    let mut v = Verification::new("web:1.0", "web.json", 3797, &snap);
    v.set_exit_code(Some(1));
    v.duration_seconds = 2.5;
    v.exercised = Some(Exercised {
        by: "nothing but the container's own command, until --duration".into(),
        training_own: false,
        unexercised: vec![Unexercised {
            port: "8080/tcp".into(),
            published: false,
        }],
    });
    v.notes
        .push("defaultAction SCMP_ACT_KILL is verified as SCMP_ACT_ERRNO".into());
    golden("verification.json", &v.json().expect("JSON"));
    golden("verification.txt", &v.text());
    golden("verification.md", &v.markdown());
}

/// A profile that denied the container runtime before it handed over: the container never
/// started.
#[test]
fn the_verification_of_a_runtime_denial() {
    let mut snap = Snapshot::default();
    snap.runtime_denied.insert(217, seen(1, "runc:[2:INIT]", 1)); // getdents64
    let mut v = Verification::new("web:1.0", "web.json", 3797, &snap);
    v.stopped_by = Some(StoppedBy::StartFailed);
    golden("verification-runtime.json", &v.json().expect("JSON"));
    golden("verification-runtime.txt", &v.text());
    golden("verification-runtime.md", &v.markdown());
}

/// A complain-mode log of `mkdir` (added), `unshare` (the bound denies it), `socket` (the
/// bound's rule), a denial, another program's record and a garbled line.
#[test]
fn the_absorb_report() {
    const LINE: &str = r#"[ 2186.302780] audit: type=1326 audit(1795910689.168:7): auid=4294967295 uid=0 gid=0 ses=4294967295 pid=7840 comm="mkdir" exe="/bin/busybox" sig=0 arch=c000003e syscall=83 compat=0 ip=0x47b567 code=0x7ffc0000"#;
    let line = |serial: u32, comm: &str, nr: u32, code: &str| {
        LINE.replace(":7)", &format!(":{serial})"))
            .replace("comm=\"mkdir\"", &format!("comm=\"{comm}\""))
            .replace("syscall=83", &format!("syscall={nr}"))
            .replace("0x7ffc0000", code)
    };
    let lines = [
        line(1, "mkdir", 83, "0x7ffc0000"),
        line(2, "mkdir", 83, "0x7ffc0000"),
        line(3, "sh", 272, "0x7ffc0000"),
        line(4, "sh", 41, "0x7ffc0000"),
        line(5, "sh", 165, "0x50001"),
        line(9, "other", 83, "0x7ffc0000"),
        "audit: type=1326 audit(1795910689.168:10): pid=1 arch=c000003e".into(),
    ];
    let selection = Selection {
        comms: ["mkdir".to_string(), "sh".to_string()].into(),
        ..Default::default()
    };
    let mut tally = Tally::default();
    let src = tally.source("kernel log");
    for (i, text) in lines.iter().enumerate() {
        let line = LogLine {
            text: text.clone(),
            cut: false,
        };
        tally.line(src, i as u64 + 1, &line, &selection, &mut |_| {
            Whereabouts::Gone
        });
    }
    tally.finish();
    let default = Profile::docker_default();
    let mut input = default.clone().logging();
    for rule in &mut input.syscalls {
        rule.names.retain(|n| n != "mkdir" && n != "socket");
    }
    let bound = Base::DockerDefault.bound(false);
    let absorption = Absorption::new(&input, "web.json", &tally, &bound, &ctx()).expect("absorbed");
    let r = AbsorbReport::new(
        "web.json",
        "docker-default",
        vec!["comm mkdir".into(), "comm sh".into()],
        &tally,
        &absorption,
        false,
    );
    golden("absorb-report.json", &r.json().expect("JSON"));
    golden("absorb-report.txt", &r.text());
    golden("absorb-report.md", &r.markdown());
}

/// The learned profile in each format `profile` writes.
#[test]
fn the_profile_layout() {
    let profile = learned(&snapshot()).profile;
    assert!(
        profile.abis() == BTreeSet::from([Abi::X86_64, Abi::I386]),
        "{:?}",
        profile.abis()
    );
    golden("profile.json", &profile.to_json().expect("JSON"));
    let oci = OciSeccomp::resolve(&profile, &ctx());
    golden("profile.oci.json", &oci.to_json().expect("JSON"));
    golden(
        "profile.k8s.yaml",
        &oci.to_k8s_yaml("web-1.0").expect("YAML"),
    );
    golden(
        "profile.complain.json",
        &profile.clone().logging().to_json().expect("JSON"),
    );
}

/// Watch's index of two profiles, one of them incomplete.
#[test]
fn the_watch_index() {
    let row = |profile: &str, file: Option<&str>, notes: &[&str]| IndexRow {
        runtime_calls: ["capset", "close", "execve", "fcntl"]
            .iter()
            .filter(|_| file.is_some())
            .map(|n| n.to_string())
            .collect(),
        profile: profile.into(),
        file: file.map(String::from),
        images: vec!["web:1.0".into()],
        containers: vec![format!("{profile}_1"), format!("{profile}_2")],
        runs: 3,
        allowed: 42,
        docker_default_allowed: 309,
        reduction_vs_docker_default_percent: 86.4,
        complete: notes.is_empty(),
        runtimes: vec!["runc 1.1.5+ds1".into()],
        notes: notes.iter().map(|n| n.to_string()).collect(),
        security_context: None,
        ran: ProgramsRun::default(),
    };
    let index = Index {
        node: None,
        profiles: vec![
            IndexRow {
                ran: ProgramsRun {
                    programs: vec!["/bin/sh".into(), "/usr/sbin/httpd".into()],
                    coverage: Some(coverage()),
                    ceiling: Some(CeilingLine {
                        added: vec!["inotify_add_watch".into(), "mkdirat".into()],
                        complete: false,
                    }),
                },
                ..row("shop-web", Some("shop-web.json"), &[])
            },
            row(
                "shop-db",
                None,
                &["shop-db_1: still running when watching ended: recorded up to then"],
            ),
        ],
    };
    golden("index.json", &index.json().expect("JSON"));
    golden("index.md", &index.markdown());
    golden("index.txt", &index.text());
}

/// Watch's index of a Kubernetes node: the node's name, and the line that runs each workload's
/// container under its profile.
#[test]
fn the_watch_index_of_a_node() {
    let file = "default-web-httpd.json";
    let index = Index {
        node: Some("node-1".into()),
        profiles: vec![IndexRow {
            profile: "default-web-httpd".into(),
            file: Some(file.into()),
            images: vec!["localhost/web:1".into()],
            containers: vec![
                "default-web-7d9f8b6c5-abcde-httpd-0123456789ab".into(),
                "default-web-7d9f8b6c5-fghij-httpd-ba9876543210".into(),
            ],
            runs: 2,
            allowed: 52,
            docker_default_allowed: 309,
            reduction_vs_docker_default_percent: 83.2,
            complete: true,
            runtimes: vec!["io.containerd.runc.v2 1.1.5+ds1".into()],
            runtime_calls: vec!["capset".into(), "execve".into()],
            notes: Vec::new(),
            security_context: Some(format!(
                "securityContext: {{seccompProfile: {{type: Localhost, localhostProfile: profile/{file}}}}}"
            )),
            ran: ProgramsRun::default(),
        }],
    };
    golden("index-node.json", &index.json().expect("JSON"));
    golden("index-node.md", &index.markdown());
}

/// What a profile allows beyond another, and what it dropped.
#[test]
fn the_diff() {
    let old = learned(&snapshot()).profile;
    let mut new = old.clone();
    new.syscalls[0].names.retain(|n| n != "listen");
    new.syscalls[0].names.push("ptrace".into());
    new.syscalls
        .retain(|r| !r.names.contains(&"socket".to_string()));
    new.syscalls
        .push(crate::seccomp::Rule::allow(["socket".to_string()]));
    let diff = DiffReport::new("old.json", "new.json", Diff::between(&old, &new, &ctx()));
    golden("diff.json", &diff.json().expect("JSON"));
    golden("diff.txt", &diff.text());
}

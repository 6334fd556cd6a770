use super::*;

fn names(t: &Tail) -> Vec<&'static str> {
    t.calls.iter().map(|(n, _)| *n).collect()
}

fn measured(family: &str) -> &'static Measured {
    MEASURED
        .iter()
        .find(|m| m.family == family)
        .expect("measured")
}

#[test]
fn versions_and_families() {
    let runc = Runtime::new("runc", Some("1.1.5+ds1"));
    assert_eq!(runc.family(), Some("runc"));
    assert_eq!(runc.minor().as_deref(), Some("1.1"));
    assert_eq!(
        Runtime::new("io.containerd.runc.v2", Some("v1.1.12"))
            .minor()
            .as_deref(),
        Some("1.1")
    );
    assert_eq!(
        Runtime::new("io.containerd.runc.v2", None).family(),
        Some("runc")
    );
    assert_eq!(Runtime::new("crun", Some("1.8.1")).family(), Some("crun"));
    assert_eq!(Runtime::new("oci", None).family(), None);
    assert_eq!(Runtime::new("runc", Some("dev")).minor(), None);
}

#[test]
fn a_measured_version_without_its_binary_gets_what_the_measured_binary_said() {
    let t = tail(&Runtime::new("runc", Some("1.1.5+ds1")));
    let note = t.note.clone().expect("a note: the binary was not read");
    assert!(note.contains("was not found"), "{note}");
    for (name, why) in measured("runc").calls {
        let (_, got) = t.calls.iter().find(|(n, _)| n == name).expect(name);
        assert!(got.starts_with(why), "{name}: {got}");
    }
    // The Go runtime's own calls, which no measurement saw, with where they come from.
    for name in ["mmap", "munmap", "madvise", "nanosleep", "restart_syscall"] {
        let (_, why) = t.calls.iter().find(|(n, _)| *n == name).expect(name);
        assert!(why.contains("Go runtime (go1.19.8)"), "{name}: {why}");
    }
    let (_, futex) = t.calls.iter().find(|(n, _)| *n == "futex").expect("futex");
    assert!(
        futex.contains("seen in 897 of 899") && futex.contains("runtime.futex"),
        "{futex}"
    );
    let mut sorted = names(&t);
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, names(&t), "sorted, each once");
}

#[test]
fn unmeasured_runtimes_get_the_union_and_a_note() {
    let t = tail(&Runtime::new("runc", Some("1.3.0")));
    let note = t.note.expect("a note");
    assert!(note.contains("runc 1.3.0 was not measured"), "{note}");
    for (name, _) in measured("runc").calls {
        assert!(t.calls.iter().any(|(n, _)| n == name), "{name}");
    }
    let t = tail(&Runtime::new("oci", None));
    assert!(t.note.is_some());
    for m in MEASURED {
        for (name, _) in m.calls {
            assert!(t.calls.iter().any(|(n, _)| n == name), "{name}");
        }
    }
}

#[test]
fn crun_gets_its_own_set_not_runcs() {
    let crun = tail(&Runtime::new("crun", Some("1.8.1")));
    let runc = tail(&Runtime::new("runc", Some("1.1.5+ds1")));
    assert_eq!(
        crun.note, None,
        "crun 1.8 is measured, and is no Go program"
    );
    for (name, _) in measured("crun").calls {
        assert!(crun.contains(name), "{name}");
    }
    // runc's Go runtime is not crun's.
    assert!(!crun.contains("madvise") && runc.contains("madvise"));
    assert!(names(&crun).len() < names(&runc).len());
}

#[test]
fn tails_of_several_runtimes_together() {
    let crun = Runtime::new("crun", Some("1.8.1"));
    let runc = Runtime::new("runc", Some("1.1.5+ds1"));
    let both = tail_of(&[&crun, &runc]);
    for name in names(&tail(&crun)).into_iter().chain(names(&tail(&runc))) {
        assert!(both.contains(name), "{name}");
    }
    assert_eq!(both.note, tail(&runc).note);
    assert_eq!(tail_of(&[&crun, &crun]), tail(&crun));
}

/// Every measured call is a real x86_64 syscall, named once.
#[test]
fn measured_calls_are_known() {
    for m in MEASURED {
        let mut names: Vec<&str> = m.calls.iter().map(|(n, _)| *n).collect();
        names.extend(m.read().iter().flat_map(|b| b.calls.keys().copied()));
        for name in &names {
            assert!(crate::names::Abi::X86_64.knows(name), "{name}");
        }
        let own: Vec<&str> = m.calls.iter().map(|(n, _)| *n).collect();
        let mut once = own.clone();
        once.sort();
        once.dedup();
        assert_eq!(once, own, "{} {}: sorted, each once", m.family, m.minor);
    }
}

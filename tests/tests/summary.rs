//! `--summary`: the Markdown to commit beside a profile changes only when the profile does,
//! while the full report carries the numbers of each run.
use profile_tests::{Scratch, count, privileged, train};

#[test]
fn summary_is_the_same_for_the_same_profile() {
    if !privileged("summary_is_the_same_for_the_same_profile") {
        return;
    }
    let dir = Scratch::new("summary");
    let mut trained = Vec::new();
    for (name, calls) in [("a", 1000), ("b", 2345)] {
        let summary = dir.path(&format!("{name}.summary.md"));
        let env = format!("N={calls}");
        let flags = ["--runs", "2", "--verify", "-e", &env, "--summary"];
        let flags = [&flags[..], &[summary.to_str().unwrap()]].concat();
        // The same command (the report's title), with a different number of calls.
        let cmd = ["sh", "-c", "exec sysloop getppid $N"];
        let (profile, rep, out) = train(&dir, name, &flags, &cmd);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Two runs of the workload's calls, and a few the runtime and the shell make.
        let calls_seen = count(&rep.expect("report written"), "getppid");
        assert!(calls_seen >= 2 * calls, "{calls_seen}");
        let text = std::fs::read_to_string(&summary).expect("summary written");
        assert!(
            !text.contains(&calls_seen.to_string()) && !text.contains("## Observed syscalls"),
            "{text}"
        );
        assert!(text.contains("Learned from 2 runs."), "{text}");
        assert!(text.contains("Verified under enforcement right after training: **PASS**"));
        assert!(
            text.contains("## Allowed whether observed or not"),
            "{text}"
        );
        trained.push((std::fs::read(&profile).unwrap(), text, calls_seen));
    }
    assert_ne!(trained[0].2, trained[1].2);
    assert_eq!(trained[0].0, trained[1].0, "the profiles differ");
    assert_eq!(trained[0].1, trained[1].1);
}

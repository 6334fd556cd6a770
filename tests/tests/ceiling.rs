//! What training didn't see: the recorder knows which programs a workload exec'd, the report
//! (and watch's index) holds what their ceilings can call against what was observed, and
//! `train --ceiling` and `watch --ceiling` make a profile that serves a path the recorded
//! container never took, still within Docker's default.
use std::{collections::BTreeSet, path::Path, process::Command, sync::OnceLock};

use profile_tests::{
    GOSERVE, Httpd, Scratch, build_image, container_name, free_port, http_request, output_text,
    privileged, profile, report, strings, test_image,
};
use serde_json::Value;

const DEFAULT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tracer/assets/docker-default-seccomp.json"
);

/// A `FROM scratch` image holding only the static Go server, as /goserve on :8080.
fn server_image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let ctx = Scratch::new("ceiling-image");
        std::fs::copy(GOSERVE, ctx.path("goserve")).expect("goserve");
        std::fs::write(
            ctx.path("Dockerfile"),
            "FROM scratch\n\
             COPY goserve /goserve\n\
             ENTRYPOINT [\"/goserve\"]\n\
             CMD [\":8080\"]\n",
        )
        .expect("Dockerfile");
        // Tagged by the server's bytes: runs of one build share the image, others never swap it.
        let bytes = std::fs::read(GOSERVE).expect("goserve built");
        let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
        let image = format!("profile-test/goserve:{hash:016x}");
        if let Err(why) = build_image(&image, &ctx.0) {
            panic!("{why}");
        }
        image
    })
}

/// Trains the server with only `GET /` (with `flags`); returns the profile and the report.
fn train_server(dir: &Scratch, name: &str, flags: &[&str]) -> (std::path::PathBuf, Value) {
    let port = free_port();
    let profile_path = dir.path(&format!("{name}.json"));
    let report_path = dir.path(&format!("{name}.report.json"));
    let exercise = format!(
        "i=0; until busybox wget -q -O /dev/null http://127.0.0.1:{port}/; do \
           i=$((i+1)); [ $i -lt 100 ] || exit 1; sleep 0.1; done"
    );
    let publish = format!("127.0.0.1:{port}:8080");
    let mut args = vec![
        "train",
        "--image",
        server_image(),
        "-q",
        "-o",
        profile_path.to_str().expect("utf-8"),
        "--report",
        report_path.to_str().expect("utf-8"),
        "-p",
        &publish,
        "--exercise",
        &exercise,
    ];
    args.extend_from_slice(flags);
    let out = profile(&args);
    assert!(
        out.status.success(),
        "train {flags:?}: {}",
        output_text(&out)
    );
    (profile_path, report(&report_path))
}

/// Watches one container of the server (`--per container`, with `flags`) while it serves only
/// `GET /`; returns the profile it wrote and its row of the index.
fn watch_server(dir: &Scratch, name: &str, flags: &[&str]) -> (std::path::PathBuf, Value) {
    let out_dir = dir.path(name);
    let container = container_name(&format!("watch-{name}"));
    let port = free_port();
    let script = format!(
        "docker run -d --rm --name {container} --label {container} -p 127.0.0.1:{port}:8080 {image} >/dev/null && \
         i=0; until busybox wget -q -O /dev/null http://127.0.0.1:{port}/; do \
           i=$((i+1)); [ $i -lt 100 ] || exit 1; sleep 0.1; done; \
         docker stop -t 5 {container} >/dev/null",
        image = server_image()
    );
    let filter = format!("label={container}");
    let mut args = vec![
        "watch",
        "-o",
        out_dir.to_str().expect("utf-8"),
        "--per",
        "container",
        "--filter",
        &filter,
    ];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["--", "sh", "-c", &script]);
    let out = profile(&args);
    let _ = Command::new("docker")
        .args(["rm", "-f", &container])
        .output();
    assert!(
        out.status.success(),
        "watch {flags:?}: {}",
        output_text(&out)
    );
    let index = report(&out_dir.join("index.json"));
    let rows = index["profiles"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 1, "{index:#}");
    let row = rows[0].clone();
    assert_eq!(row["complete"], true, "{row:#}");
    let file = row["file"].as_str().expect("a profile written");
    let markdown = std::fs::read_to_string(out_dir.join("index.md")).expect("index.md");
    assert!(
        markdown.contains(&format!("## Coverage of {container}")),
        "{markdown}"
    );
    (out_dir.join(file), row)
}

/// The unseen calls of the coverage's first program.
fn unseen(program: &Value) -> BTreeSet<String> {
    program["unseen"]
        .as_array()
        .expect("unseen")
        .iter()
        .filter_map(|u| u["name"].as_str().map(String::from))
        .collect()
}

/// The server under `profile`, asked to make a directory: its answer.
fn mkdir_under(profile: &Path, test: &str) -> String {
    let server = Httpd::serving(profile, test, server_image(), &[]);
    let hello = http_request(server.port, "GET / HTTP/1.0");
    assert!(hello.contains("hello"), "GET / under {test}: {hello:?}");
    http_request(server.port, "GET /mkdir?name=fresh HTTP/1.0")
}

/// The plain profile never saw mkdirat: the handler fails; the `--ceiling` one serves it, and
/// is never weaker: it stays within Docker's default.
fn only_the_ceiling_serves_mkdir(plain: &Path, ceiling: &Path, test: &str) {
    let denied = mkdir_under(plain, &format!("{test}-plain"));
    assert!(
        denied.contains("operation not permitted"),
        "/mkdir under the plain profile ({test}): {denied:?}"
    );
    let made = mkdir_under(ceiling, &format!("{test}-wide"));
    assert!(
        made.contains("made"),
        "/mkdir under --ceiling ({test}): {made:?}"
    );
    let diff = profile(&["diff", DEFAULT, ceiling.to_str().expect("utf-8")]);
    assert_eq!(diff.status.code(), Some(0), "{}", output_text(&diff));
}

#[test]
fn ceiling_serves_a_path_training_never_took_within_the_default() {
    if !privileged("ceiling_serves_a_path_training_never_took_within_the_default") {
        return;
    }
    let dir = Scratch::new("ceiling-server");
    let (plain, plain_rep) = train_server(&dir, "plain", &[]);
    let (ceiling, rep) = train_server(&dir, "ceiling", &["--ceiling"]);

    only_the_ceiling_serves_mkdir(&plain, &ceiling, "ceiling");

    // The report: the server ran, its ceiling is sound, and what training missed is named.
    let programs: Vec<String> = strings(&rep["programs"]);
    assert_eq!(programs, ["/goserve"]);
    let coverage = &rep["coverage"];
    assert_eq!(coverage["bounded"], true, "{coverage:#}");
    let server = &coverage["programs"][0];
    assert_eq!(server["path"], "/goserve");
    let unseen = unseen(server);
    assert!(unseen.contains("mkdirat"), "{unseen:?}");
    assert!(
        !unseen.contains("accept4"),
        "training served GET /: {unseen:?}"
    );
    assert_eq!(rep["ceiling"]["complete"], true);
    let added: BTreeSet<String> = strings(&rep["ceiling"]["added"]);
    assert!(added.contains("mkdirat"), "{added:?}");
    // The plain training reports coverage too, without widening anything.
    assert_eq!(plain_rep["coverage"]["bounded"], true);
    assert!(plain_rep.get("ceiling").is_none());
    assert!(
        rep["allowed"].as_u64() > plain_rep["allowed"].as_u64(),
        "{} vs {}",
        rep["allowed"],
        plain_rep["allowed"]
    );
    eprintln!(
        "goserve: {} syscalls allowed trained, {} with --ceiling, {} in its ceiling",
        plain_rep["allowed"], rep["allowed"], server["ceiling"]
    );
}

#[test]
fn watch_reports_coverage_and_its_ceiling_serves_a_path_never_taken() {
    if !privileged("watch_reports_coverage_and_its_ceiling_serves_a_path_never_taken") {
        return;
    }
    let dir = Scratch::new("ceiling-watch");
    let (plain, plain_row) = watch_server(&dir, "plain", &[]);
    let (ceiling, row) = watch_server(&dir, "ceiling", &["--ceiling"]);

    // The index names the server, its sound ceiling and what the container never called.
    for r in [&plain_row, &row] {
        assert_eq!(
            strings::<Vec<String>>(&r["programs"]),
            ["/goserve"],
            "{r:#}"
        );
        assert_eq!(r["coverage"]["bounded"], true, "{r:#}");
        let server = &r["coverage"]["programs"][0];
        assert_eq!(server["path"], "/goserve");
        let unseen = unseen(server);
        assert!(unseen.contains("mkdirat"), "{unseen:?}");
        assert!(!unseen.contains("accept4"), "it served GET /: {unseen:?}");
    }
    assert!(plain_row.get("ceiling").is_none(), "{plain_row:#}");
    assert_eq!(row["ceiling"]["complete"], true, "{row:#}");
    let added: BTreeSet<String> = strings(&row["ceiling"]["added"]);
    assert!(added.contains("mkdirat"), "{added:?}");

    only_the_ceiling_serves_mkdir(&plain, &ceiling, "ceiling-watch");
    assert!(
        row["allowed"].as_u64() > plain_row["allowed"].as_u64(),
        "{} vs {}",
        row["allowed"],
        plain_row["allowed"]
    );
    eprintln!(
        "goserve under watch: {} syscalls allowed, {} with --ceiling ({} added), {} in its ceiling",
        plain_row["allowed"],
        row["allowed"],
        added.len(),
        row["coverage"]["programs"][0]["ceiling"]
    );
}

#[test]
fn watch_refuses_ceiling_through_the_cri() {
    let out = profile(&["watch", "--engine", "cri", "--ceiling", "--duration", "1s"]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("--ceiling and --engine cri contradict each other"),
        "{text}"
    );
}

#[test]
fn programs_lists_what_the_workload_executed_not_the_runtime() {
    if !privileged("programs_lists_what_the_workload_executed_not_the_runtime") {
        return;
    }
    let dir = Scratch::new("ceiling-programs");
    let rep_path = dir.path("programs.json");
    let out = profile(&[
        "train",
        "--image",
        test_image(),
        "-q",
        "-o",
        dir.path("programs.profile.json").to_str().expect("utf-8"),
        "--report",
        rep_path.to_str().expect("utf-8"),
        "--",
        "sh",
        "-c",
        "/bin/sysloop getsid 3; ls; cat /etc/hostname",
    ]);
    assert!(out.status.success(), "train: {}", output_text(&out));
    let rep = report(&rep_path);
    let programs: BTreeSet<String> = strings(&rep["programs"]);
    // busybox runs its applets (ls, cat) by exec'ing itself again.
    let expected: BTreeSet<String> = ["/bin/sh", "/bin/sysloop", "/proc/self/exe"]
        .map(String::from)
        .into();
    assert_eq!(programs, expected, "{rep:#}");
    let coverage = rep["coverage"]["programs"].as_array().expect("coverage");
    let itself = coverage
        .iter()
        .find(|p| p["path"] == "/proc/self/exe")
        .expect("/proc/self/exe in coverage");
    assert!(
        itself["no_bound"]
            .as_str()
            .is_some_and(|why| why.contains("re-executing itself")),
        "{itself:#}"
    );
    // sysloop is static C, and sh a symbolic link to Debian's static busybox: both have a
    // sound ceiling, found by the name they were exec'd with.
    for path in ["/bin/sh", "/bin/sysloop"] {
        let program = coverage
            .iter()
            .find(|p| p["path"] == path)
            .unwrap_or_else(|| panic!("{path} not in coverage: {rep:#}"));
        assert!(program.get("no_bound").is_none(), "{program:#}");
        assert!(program["ceiling"].as_u64() > program["observed"].as_u64());
    }
}

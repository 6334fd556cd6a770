//! What a run was exercised by, as a new user needs to know it: a port the image EXPOSEs that
//! nothing reached is warned of, and a verification says what exercised it, so that a PASS
//! is not taken for more than it shows.
use std::sync::OnceLock;

use profile_tests::{Scratch, build_image, output_text, privileged, profile, test_image};

/// The test image serving /www with busybox httpd on port 8080, which it EXPOSEs, as the
/// example web image does.
fn exposing_image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let base = test_image();
        let tag = base.rsplit_once(':').map_or("latest", |(_, tag)| tag);
        let image = format!("profile-test/exposing:{tag}");
        let ctx = Scratch::new("exposing-image");
        std::fs::write(
            ctx.path("Dockerfile"),
            format!(
                "FROM {base}\n\
                 EXPOSE 8080\n\
                 STOPSIGNAL SIGKILL\n\
                 CMD [\"httpd\", \"-f\", \"-v\", \"-p\", \"8080\", \"-h\", \"/www\"]\n"
            ),
        )
        .expect("Dockerfile");
        if let Err(why) = build_image(&image, &ctx.0) {
            panic!("{why}");
        }
        image
    })
}

/// An exercise that requests `/` once the server answers.
const GET_ROOT: &str = "i=0; until busybox wget -q -O /dev/null http://127.0.0.1:$PROFILE_PORT_8080/; do \
    i=$((i+1)); [ $i -lt 100 ] || exit 1; sleep 0.1; done";

#[test]
fn an_exposed_port_nothing_reached_is_warned_of_and_verify_says_what_it_exercised() {
    if !privileged("an_exposed_port_nothing_reached_is_warned_of_and_verify_says_what_it_exercised")
    {
        return;
    }
    let dir = Scratch::new("exposed");
    let written = dir.path("p.json");
    let p = written.to_str().expect("utf-8");
    let image = exposing_image();
    let out = profile(&["train", "--image", image, "--duration", "3", "-q", "-o", p]);
    assert!(out.status.success(), "{}", output_text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.lines().any(|l| l.starts_with(
            "profile: warning: the image EXPOSEs 8080/tcp, which was never published or probed"
        ) && l.contains("-p 127.0.0.1::8080")),
        "{stderr}"
    );

    // verify passes, and says that nothing but the container's own command ran.
    let report = dir.path("v.json");
    let out = profile(&[
        "verify",
        "--image",
        image,
        "--profile",
        p,
        "--duration",
        "3",
        "-q",
        "--report",
        report.to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "{}", output_text(&out));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains(
            "exercised by nothing but the container's own command, until --duration: what the workload did then works under the profile; a path it never took may still be denied"
        ),
        "{text}"
    );
    assert!(
        text.contains("not exercised: the image EXPOSEs 8080/tcp"),
        "{text}"
    );
    let json = profile_tests::report(&report);
    assert_eq!(json["exercised"]["unexercised"][0]["port"], "8080/tcp");

    // Reached, the profile fails at once (httpd forks per connection): what the warning was
    // about; and the report does not claim the probe that never ran.
    let out = profile(&[
        "verify",
        "--image",
        image,
        "--profile",
        p,
        "-q",
        "-p",
        "127.0.0.1::8080",
        "--ready-timeout",
        "5s",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("FAIL: the profile denied"), "{text}");
    assert!(
        text.contains(
            "exercised by nothing but the container's own command (the HTTP probe never ran)"
        ),
        "{text}"
    );
    assert!(!text.contains("not exercised"), "published: {text}");
}

#[test]
fn train_verify_says_it_replays_training_and_takes_another_exercise_or_the_probe() {
    if !privileged("train_verify_says_it_replays_training_and_takes_another_exercise_or_the_probe")
    {
        return;
    }
    let dir = Scratch::new("verify-with");
    let image = exposing_image();
    let train = |name: &str, flags: &[&str]| {
        let path = dir.path(name);
        let mut args = vec![
            "train",
            "--image",
            image,
            "-q",
            "-p",
            "127.0.0.1::8080",
            "--exercise",
            GET_ROOT,
            "-o",
        ];
        args.push(path.to_str().expect("utf-8"));
        args.extend_from_slice(flags);
        profile(&args)
    };

    // --verify replays the training's exercise, and says so.
    let out = train("own.json", &["--verify"]);
    assert!(out.status.success(), "{}", output_text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.lines().any(|l| l.contains("syscalls allowed")
            && l.ends_with("verified under enforcement: PASS (with training's own exercise)")),
        "{stderr}"
    );
    assert!(
        !stderr.contains("EXPOSEs"),
        "the exercise reaches it: {stderr}"
    );

    // The probe tries what one GET / never did: busybox httpd's range request seeks.
    let out = train("probed.json", &["--verify-probe"]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let why = String::from_utf8_lossy(&out.stderr);
    let last = why.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("profile: exit status 1: verification of the trained profile: FAIL")
            && last.contains("lseek"),
        "{why}"
    );

    // Another exercise, named in the verification's report (printed without -q).
    let path = dir.path("other.json");
    let other = GET_ROOT.replace("8080/", "8080/index.html");
    let out = profile(&[
        "train",
        "--image",
        image,
        "-p",
        "127.0.0.1::8080",
        "--exercise",
        GET_ROOT,
        "--verify-exercise",
        &other,
        "-o",
        path.to_str().expect("utf-8"),
    ]);
    let text = output_text(&out);
    assert!(
        text.contains(&format!("  exercised by the exercise `{other}`: ")),
        "{text}"
    );
    assert!(!text.contains("the one training ran"), "{text}");

    // The probe needs a port to request.
    let out = profile(&[
        "train",
        "--image",
        image,
        "--verify-probe",
        "-o",
        dir.path("none.json").to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("--verify-probe needs a published TCP port"),
        "{}",
        output_text(&out)
    );
}

//! The least-privilege recipe, end to end on the Docker Engine: `train --hardening` learns the
//! capabilities a workload used, where it wrote, whether an exec gained privileges and whether
//! it needed root; the container runs under all of it; `verify --hardening` names what a recipe
//! took away; and what the recipe drops is denied to an attacker inside the container where
//! Docker's defaults allow it.
use std::{path::Path, process::Output, sync::OnceLock};

use profile_tests::{
    Scratch, build_image, docker, kubernetes_validate,
    node::{ContainerSpec, Hardening, Node, PodSpec, Seccomp},
    output_text, privileged, profile, report, run_image, strings, test_image, train_image,
};
use serde_json::Value;

/// The test image plus /run, /var/lib/app and a setuid-root copy of sysloop.
fn image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let base = test_image();
        let tag = base.rsplit(':').next().unwrap_or("latest");
        let image = format!("profile-test/harden:{tag}");
        let ctx = Scratch::new("harden-image");
        std::fs::write(
            ctx.path("Dockerfile"),
            format!(
                "FROM {base}\n\
                 RUN mkdir -p /run /var/lib/app && cp /bin/sysloop /bin/suid-sysloop && \
                 chmod 4755 /bin/suid-sysloop\n"
            ),
        )
        .expect("Dockerfile");
        if let Err(why) = build_image(&image, &ctx.0) {
            panic!("{why}");
        }
        image
    })
}

/// Chowns a file it made in /tmp, writes /run/app.pid, then drops to uid 65534 (setgroups,
/// setgid, setuid) and runs on as that user.
const CHOWN_AND_DROP: &str = "touch /tmp/x && echo 1 > /run/app.pid && chown 1:1 /tmp/x && \
     exec sysloop drop 65534 /bin/sysloop getppid 1";

/// `profile train --image <image> -q -o DIR/p.profile.json --report DIR/p.json --hardening
/// DIR/h.json FLAGS -- CMD…`: the recipe (when written), the report and the output.
fn train(dir: &Scratch, flags: &[&str], cmd: &[&str]) -> (Option<Value>, Value, Output) {
    train_on(image(), dir, flags, cmd)
}

/// [`train`] on another image.
fn train_on(
    image: &str,
    dir: &Scratch,
    flags: &[&str],
    cmd: &[&str],
) -> (Option<Value>, Value, Output) {
    let recipe = dir.path("h.json");
    let mut all = vec!["--hardening", recipe.to_str().expect("utf-8")];
    all.extend_from_slice(flags);
    let (_, rep, out) = train_image(image, dir, "p", &all, cmd);
    let rep = rep.unwrap_or_else(|| panic!("no report: {}", output_text(&out)));
    (recipe.exists().then(|| report(&recipe)), rep, out)
}

/// `docker run --rm --network none OPTIONS <image> CMD…`.
fn run_with(options: &[String], cmd: &[&str]) -> Output {
    let mut opts = vec!["--network", "none"];
    opts.extend(options.iter().map(String::as_str));
    run_image(image(), &opts, cmd)
}

/// `profile verify --image <image> --profile P --hardening RECIPE -- CMD…`.
fn verify(profile_path: &Path, recipe: &Path, cmd: &[&str]) -> Output {
    let mut args = vec![
        "verify",
        "--image",
        image(),
        "--profile",
        profile_path.to_str().expect("utf-8"),
        "--hardening",
        recipe.to_str().expect("utf-8"),
        "--",
    ];
    args.extend_from_slice(cmd);
    profile(&args)
}

fn options(recipe: &Value) -> Vec<String> {
    strings(&recipe["docker_run_options"])
}

#[test]
fn a_workload_that_chowns_and_switches_user_keeps_exactly_chown_setgid_setuid() {
    if !privileged("a_workload_that_chowns_and_switches_user_keeps_exactly_chown_setgid_setuid") {
        return;
    }
    let dir = Scratch::new("harden-chown");
    let (recipe, _, out) = train(&dir, &[], &["sh", "-c", CHOWN_AND_DROP]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let recipe = recipe.unwrap_or_else(|| panic!("no recipe written: {text}"));
    assert_eq!(recipe["verified"], true, "{recipe:#}");
    assert_eq!(strings::<Vec<_>>(&recipe["capabilities"]["drop"]), ["ALL"]);
    assert_eq!(
        strings::<Vec<_>>(&recipe["capabilities"]["add"]),
        ["CHOWN", "SETGID", "SETUID"],
        "{recipe:#}"
    );
    assert_eq!(recipe["read_only_rootfs"], true, "{recipe:#}");
    assert_eq!(strings::<Vec<_>>(&recipe["tmpfs"]), ["/run", "/tmp"]);
    assert_eq!(recipe["no_new_privileges"], true, "{recipe:#}");
    // It used capabilities as root: root stays.
    assert_eq!(recipe["user"], Value::Null, "{recipe:#}");
    assert!(text.contains("least-privilege recipe ->"), "{text}");

    // The container runs under all of it, as an operator would apply it.
    let opts = options(&recipe);
    let run = run_with(&opts, &["sh", "-c", CHOWN_AND_DROP]);
    assert!(run.status.success(), "{opts:?}: {}", output_text(&run));

    // What it drops is denied to an attacker inside, where Docker's defaults allow it (the
    // capabilities and read-only root alone, without the seccomp profile).
    let without_seccomp: Vec<String> = opts
        .iter()
        .filter(|o| !o.starts_with("--security-opt=seccomp="))
        .cloned()
        .collect();
    for attack in ["mknod /tmp/null c 1 3", "touch /etc/owned", "chroot / true"] {
        let default = run_with(&[], &["sh", "-c", attack]);
        assert!(
            default.status.success(),
            "{attack} under Docker's defaults: {}",
            output_text(&default)
        );
        let hardened = run_with(&without_seccomp, &["sh", "-c", attack]);
        assert!(
            !hardened.status.success(),
            "{attack} succeeded under {without_seccomp:?}"
        );
    }

    // With SETUID removed by hand, verify names it.
    let mut narrowed = recipe.clone();
    narrowed["capabilities"]["add"] = serde_json::json!(["CHOWN", "SETGID"]);
    let narrowed_path = dir.path("no-setuid.json");
    std::fs::write(&narrowed_path, narrowed.to_string()).expect("recipe");
    let out = verify(
        &dir.path("p.profile.json"),
        &narrowed_path,
        &["sh", "-c", CHOWN_AND_DROP],
    );
    let text = output_text(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("SETUID denied to sysloop in setuid"),
        "{text}"
    );

    // A write outside the tmpfs it learned is named by its path.
    let elsewhere = format!("echo y > /var/lib/app/state && {CHOWN_AND_DROP}");
    let out = verify(
        &dir.path("p.profile.json"),
        &dir.path("h.json"),
        &["sh", "-c", &elsewhere],
    );
    let text = output_text(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("EROFS writing /var/lib/app/state"), "{text}");
}

#[test]
fn a_setuid_exec_as_a_user_keeps_privileges_and_is_named() {
    if !privileged("a_setuid_exec_as_a_user_keeps_privileges_and_is_named") {
        return;
    }
    let dir = Scratch::new("harden-suid");
    let cmd = [
        "sysloop",
        "drop",
        "65534",
        "/bin/suid-sysloop",
        "getppid",
        "1",
    ];
    let (recipe, rep, out) = train(&dir, &[], &cmd);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let recipe = recipe.unwrap_or_else(|| panic!("no recipe written: {text}"));
    assert_eq!(recipe["no_new_privileges"], false, "{recipe:#}");
    assert_eq!(
        strings::<Vec<_>>(&recipe["evidence"]["privileged_execs"]),
        ["/bin/suid-sysloop"]
    );
    // The report names the program.
    assert_eq!(
        strings::<Vec<_>>(&rep["hardening"]["evidence"]["privileged_execs"]),
        ["/bin/suid-sysloop"],
        "{rep:#}"
    );
    assert!(
        !options(&recipe)
            .iter()
            .any(|o| o.contains("no-new-privileges")),
        "{recipe:#}"
    );
    let run = run_with(&options(&recipe), &cmd);
    assert!(run.status.success(), "{}", output_text(&run));
}

/// A compose stack of two services, each trained on its own with `--compose-override`: `web`
/// chowns and drops to a user (root stays, three capabilities), `worker` needs nothing of
/// root's (it runs as 65534). The stack runs with both overrides after its own file.
#[test]
fn a_two_service_stack_runs_under_its_overrides_and_a_worker_without_root_needs_as_a_user() {
    if !privileged(
        "a_two_service_stack_runs_under_its_overrides_and_a_worker_without_root_needs_as_a_user",
    ) {
        return;
    }
    let worker = ["sysloop", "getppid", "10"];
    let mut overrides = Vec::new();
    let mut recipes = Vec::new();
    let dirs = [Scratch::new("harden-web"), Scratch::new("harden-worker")];
    for ((service, cmd), dir) in [
        ("web", vec!["sh", "-c", CHOWN_AND_DROP]),
        ("worker", worker.to_vec()),
    ]
    .into_iter()
    .zip(&dirs)
    {
        let file = dir.path(&format!("{service}.override.yml"));
        let flags = [
            "--compose-override",
            file.to_str().expect("utf-8"),
            "--service",
            service,
        ];
        let (recipe, _, out) = train(dir, &flags, &cmd);
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(0), "{service}: {text}");
        recipes.push(recipe.unwrap_or_else(|| panic!("{service}: no recipe: {text}")));
        overrides.push(file);
    }
    let worker_recipe = &recipes[1];
    assert_eq!(worker_recipe["verified"], true, "{worker_recipe:#}");
    assert!(strings::<Vec<String>>(&worker_recipe["capabilities"]["add"]).is_empty());
    assert_eq!(worker_recipe["read_only_rootfs"], true);
    assert!(strings::<Vec<String>>(&worker_recipe["tmpfs"]).is_empty());
    assert_eq!(worker_recipe["no_new_privileges"], true);
    assert_eq!(worker_recipe["user"], "65534:65534", "{worker_recipe:#}");

    let project = format!("profile-harden-{}", std::process::id());
    let stack = dirs[0].path("compose.yml");
    std::fs::write(
        &stack,
        format!(
            "version: \"2.4\"\nservices:\n  web:\n    image: {image}\n    network_mode: none\n    \
             command: [\"sh\", \"-c\", {web:?}]\n  worker:\n    image: {image}\n    \
             network_mode: none\n    command: {worker:?}\n",
            image = image(),
            web = CHOWN_AND_DROP,
        ),
    )
    .expect("compose.yml");
    let compose = |args: &[&str]| {
        let mut cmd = std::process::Command::new("docker-compose");
        cmd.args(["-p", &project, "-f"]).arg(&stack);
        for o in &overrides {
            cmd.arg("-f").arg(o);
        }
        cmd.args(args).output().expect("docker-compose")
    };
    let up = compose(&["up", "--no-color"]);
    let inspect = docker(&[
        "inspect",
        "--format",
        "{{.State.ExitCode}} {{.HostConfig.ReadonlyRootfs}} {{.HostConfig.CapAdd}} {{.Config.User}}",
        &format!("{project}_web_1"),
        &format!("{project}_worker_1"),
    ]);
    let down = compose(&["down"]);
    assert!(up.status.success(), "{}", output_text(&up));
    assert!(down.status.success(), "{}", output_text(&down));
    let states = String::from_utf8_lossy(&inspect.stdout).into_owned();
    assert_eq!(
        states.lines().collect::<Vec<_>>(),
        ["0 true [CHOWN SETGID SETUID] ", "0 true [] 65534:65534"],
        "{}",
        output_text(&up)
    );
}

/// The test image has no /run: chown a file in /tmp and drop to a user.
const CHOWN_AND_DROP_TMP: &str =
    "touch /tmp/x && chown 1:1 /tmp/x && exec sysloop drop 65534 /bin/sysloop getppid 1";

/// `train --k8s-patch`: the patch, merged into a Deployment as `kubectl patch` merges it,
/// validates against the Kubernetes schemas; the container runs under it through the CRI, as
/// kubelet drives it (its securityContext, the profile as Localhost, the emptyDir), and with
/// a capability taken from it by hand it fails.
#[test]
fn a_deployments_container_runs_through_the_cri_under_the_learned_security_context() {
    if !privileged(
        "a_deployments_container_runs_through_the_cri_under_the_learned_security_context",
    ) {
        return;
    }
    let dir = Scratch::new("harden-k8s");
    let patch_path = dir.path("patch.yaml");
    let flags = [
        "--k8s-patch",
        patch_path.to_str().expect("utf-8"),
        "--k8s-container",
        "app",
    ];
    let (recipe, _, out) = train_on(
        test_image(),
        &dir,
        &flags,
        &["sh", "-c", CHOWN_AND_DROP_TMP],
    );
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let recipe = recipe.unwrap_or_else(|| panic!("no recipe: {text}"));
    assert_eq!(strings::<Vec<_>>(&recipe["tmpfs"]), ["/tmp"], "{recipe:#}");
    let patch: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(&patch_path).expect("patch"))
            .expect("YAML");
    let pod = &patch["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["name"], "app", "{patch:#}");
    let sc = &container["securityContext"];
    assert_eq!(sc["allowPrivilegeEscalation"], false, "{patch:#}");
    assert_eq!(sc["readOnlyRootFilesystem"], true, "{patch:#}");
    assert_eq!(sc["seccompProfile"]["type"], "Localhost", "{patch:#}");
    assert_eq!(
        sc["seccompProfile"]["localhostProfile"],
        "profile/p.profile.json"
    );

    // Strategic merge into a Deployment: the container by name, the volumes added.
    let mut app = serde_json::json!({
        "name": "app",
        "image": test_image(),
        "command": ["sh", "-c", CHOWN_AND_DROP_TMP],
    });
    for key in ["securityContext", "volumeMounts"] {
        app[key] = container[key].clone();
    }
    let deployment = serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "app"},
        "spec": {
            "selector": {"matchLabels": {"app": "app"}},
            "template": {
                "metadata": {"labels": {"app": "app"}},
                "spec": {"containers": [app], "volumes": pod["volumes"].clone()},
            },
        },
    });
    let manifest = dir.path("deployment.json");
    std::fs::write(&manifest, deployment.to_string()).expect("manifest");
    if let Some(out) = kubernetes_validate(&[manifest]) {
        assert!(out.status.success(), "{}", output_text(&out));
    }

    let node = Node::start("harden");
    let profile_path = dir.path("p.profile.json");
    let volumes = dir.path("volumes");
    let run = |name: &str, hardening: Hardening| {
        let mut c = ContainerSpec::new(
            "app",
            CHOWN_AND_DROP_TMP,
            Seccomp::Localhost(profile_path.clone()),
        );
        c.hardening = Some(hardening);
        let pod = node.run_pod(&PodSpec::new("default", name, vec![c]));
        let code = node.wait_exited(&pod.containers[0], std::time::Duration::from_secs(60));
        let log = node.log(&pod, "app");
        node.remove_pod(&pod);
        (code, log)
    };
    let learned = Hardening::of_container(
        &deployment["spec"]["template"]["spec"]["containers"][0],
        &volumes,
    );
    assert_eq!(learned.add, ["CHOWN", "SETGID", "SETUID"]);
    assert!(learned.read_only && learned.no_new_privs);
    let (code, log) = run("hardened", learned.clone());
    assert_eq!(code, 0, "{log}");
    let mut without = learned;
    without.add.retain(|c| c != "SETUID");
    let (code, log) = run("no-setuid", without);
    assert_ne!(code, 0, "without SETUID: {log}");
}

/// `merge` unites recipes (capabilities and tmpfs; read-only and no-new-privileges only
/// where all agree); `diff` exits 1 on a capability more or a read-only root given up, as on a
/// syscall more, and 0 the other way round.
#[test]
fn recipes_merge_and_a_diff_that_widens_fails() {
    let dir = Scratch::new("harden-diff");
    let recipe = |add: &[&str], ro: bool, tmpfs: &[&str], nnp: bool| {
        serde_json::json!({
            "image": "app", "verified": true,
            "capabilities": {"drop": ["ALL"], "add": add},
            "read_only_rootfs": ro, "tmpfs": tmpfs, "no_new_privileges": nnp, "user": null,
        })
    };
    let old = dir.path("old.json");
    let new = dir.path("new.json");
    std::fs::write(&old, recipe(&["CHOWN"], true, &["/tmp"], true).to_string()).expect("old");
    std::fs::write(
        &new,
        recipe(&["CHOWN", "NET_RAW"], false, &[], true).to_string(),
    )
    .expect("new");
    let merged = dir.path("merged.json");
    let out = profile(&[
        "merge",
        old.to_str().expect("utf-8"),
        new.to_str().expect("utf-8"),
        "-o",
        merged.to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "{}", output_text(&out));
    let m = report(&merged);
    assert_eq!(
        strings::<Vec<_>>(&m["capabilities"]["add"]),
        ["CHOWN", "NET_RAW"]
    );
    assert_eq!(m["read_only_rootfs"], false);
    assert_eq!(m["no_new_privileges"], true);

    let out = profile(&[
        "diff",
        old.to_str().expect("utf-8"),
        new.to_str().expect("utf-8"),
    ]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("+ capability NET_RAW added"), "{text}");
    assert!(
        text.contains("+ the root filesystem is writable again"),
        "{text}"
    );
    let out = profile(&[
        "diff",
        new.to_str().expect("utf-8"),
        old.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    // A recipe is never compared with a seccomp profile.
    let out = profile(&["diff", old.to_str().expect("utf-8"), "docker-default"]);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
}

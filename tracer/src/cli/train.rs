//! `profile train`: learn an image's profile from recorded Docker runs.
use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::Args;

use super::{
    args::{HardeningArgs, LearnOptions, ProfileFormatArgs, RecordArgs},
    container::{ContainerArgs, show},
    exit::{ending, exit_code},
};
use crate::{
    docker, formats, output,
    report::{Render as _, Report, fewer_or_more},
    session::ProbeOptions,
    status::Status,
    train::{TrainOptions, Training, VerifyWith, train},
};

#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub container: ContainerArgs,
    /// Where to write the profile (atomically); `-` for stdout.
    /// [default: profiles/<image>-<tag>.json, or .yaml for --format k8s]
    #[arg(short, long, value_name = "PROFILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub record: RecordArgs,
    #[command(flatten)]
    pub learn: LearnOptions,
    #[command(flatten)]
    pub format: ProfileFormatArgs,
    /// Run the workload N times (a fresh container each time) and learn the union; the report
    /// shows how many syscalls each run added, to see whether training has converged.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub runs: u32,
    /// After training, run the workload once more under the fresh profile, enforced, and fail
    /// (exit 1) if it denied anything. It replays training's own exercise (or probe): that
    /// shows the profile holds for what was learned, not for a path training never took
    /// (--verify-exercise and --verify-probe try others).
    #[arg(long, conflicts_with = "all_syscalls")]
    pub verify: bool,
    /// Verify with this exercise (a host command, run as --exercise is) instead of training's
    /// own, so that a path training never took is tried; implies --verify.
    #[arg(long, value_name = "CMD", conflicts_with_all = ["all_syscalls", "verify_probe"])]
    pub verify_exercise: Option<String>,
    /// Verify with the built-in HTTP probe (see --probe) instead of training's own exercise;
    /// implies --verify, and needs a published TCP port.
    #[arg(long, conflicts_with = "all_syscalls")]
    pub verify_probe: bool,
    /// Also allow every call the programs that ran can make, from their sound ceilings (read
    /// from the image's static and Go executables), within the base: a path training never
    /// took can't be missed when every program that ran has one.
    #[arg(long)]
    pub ceiling: bool,
    #[command(flatten)]
    pub hardening: HardeningArgs,
}

pub async fn run(args: TrainArgs) -> anyhow::Result<ExitCode> {
    args.container.check()?;
    let to_stdout = args.output.as_deref() == Some(Path::new("-"));
    let profile = args.output.clone().unwrap_or_else(|| {
        docker::default_profile_path(&args.container.image)
            .with_extension(args.format.rendering().extension())
    });
    // Every output is checked before any container is created.
    // The default path's directory (profiles/) is made when missing.
    if !to_stdout {
        output::check_writable(&profile, args.record.mkdir.mkdir || args.output.is_none())?;
    }
    let recipe_outputs = args.hardening.outputs(
        &args.container.image,
        (!to_stdout).then_some(profile.as_path()),
    );
    output::check_distinct(&[
        ("-o", (!to_stdout).then_some(profile.as_path())),
        ("--report", args.record.report.as_deref()),
        ("--summary", args.record.summary.as_deref()),
        ("--hardening", recipe_outputs.recipe.as_deref()),
        ("--compose-override", recipe_outputs.compose.as_deref()),
        ("--k8s-patch", recipe_outputs.k8s.as_deref()),
    ])?;
    args.record.check_writable()?;
    for path in recipe_outputs.paths() {
        args.record.mkdir.check(path)?;
    }
    let options = TrainOptions {
        run: args.container.options(),
        base: args.learn.base()?,
        allow_beyond_default: args.learn.allow_beyond_default,
        ctx: args.container.context()?,
        learn_args: args.learn.learn_args,
        all_syscalls: args.record.all_syscalls,
        runs: args.runs,
        verify: args.verify || args.verify_exercise.is_some() || args.verify_probe,
        verify_with: verify_with(&args)?,
        rendering: args.format.rendering(),
        output: (!to_stdout).then(|| profile.clone()),
        ceiling: args.ceiling,
        hardening: args.hardening.wanted(),
    };
    let training = train(&options, &show).await?;
    let trained = match &training {
        Training::NotReady(not_ready) => {
            eprintln!("profile: error: {not_ready}");
            return Ok(exit_code(training.status()));
        }
        Training::Learned(trained) => trained,
    };
    let report = &trained.report;
    // -q: the warnings and one closing line; the report only where --report puts it.
    let quiet = args.container.quiet;
    if args.record.report.is_some() || quiet {
        for warning in &report.warnings {
            log::warn!("{warning}");
        }
    }
    // A k8s manifest is named after the image, wherever it is written.
    let name = docker::default_profile_path(&args.container.image)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned());
    // A run that did not complete never replaces a profile: its partial one goes beside.
    let placement = options.output.as_deref().map(|path| {
        formats::place(
            path,
            trained.status == Status::Success,
            &trained.learned.profile,
            &options.ctx,
        )
    });
    let written = placement.as_ref().map(formats::Placement::path);
    options
        .rendering
        .write(written, &trained.learned.profile, name.as_deref())?;
    args.record.write(report)?;
    match &args.record.report {
        Some(_) => {}
        None if quiet => {}
        None if to_stdout => eprint!("{}", report.text()),
        None => print!("{}", report.text()),
    }
    if let Some(v) = trained.verification.as_ref().filter(|_| !quiet) {
        eprint!("{}", v.text());
    }
    say_summary(report, written);
    if let Some(recipe) = &trained.recipe {
        let why_not = trained
            .verification
            .as_ref()
            .map(|v| format!("the run under it did not pass ({})", v.why_failed()))
            .unwrap_or_else(|| "it was not verified".to_string());
        if let Some(words) = recipe_outputs.write(recipe)?.words(&why_not) {
            eprintln!("profile: {words}");
        }
    } else if args.hardening.wanted() {
        eprintln!("profile: no least-privilege recipe: the training did not get to verify one");
    }
    if let Some(words) = placement.as_ref().and_then(formats::Placement::words) {
        eprintln!("profile: {words}");
    }
    Ok(ending(trained.status, trained.why.as_deref()))
}

/// What exercises the verification, when not training's own.
fn verify_with(args: &TrainArgs) -> anyhow::Result<Option<VerifyWith>> {
    if let Some(cmd) = &args.verify_exercise {
        return Ok(Some(VerifyWith::Exercise(cmd.clone())));
    }
    if !args.verify_probe {
        return Ok(None);
    }
    if !args
        .container
        .publish
        .iter()
        .any(|p| p.container.ends_with("/tcp"))
    {
        anyhow::bail!(
            "--verify-probe needs a published TCP port to request (-p [[IP:]HOST:]CTR): none is published"
        );
    }
    Ok(Some(VerifyWith::Probe(ProbeOptions {
        paths: args.container.probe_urls.clone(),
        ..ProbeOptions::default()
    })))
}

/// One line on what was learned, where it went, and how its verification went.
fn say_summary(report: &Report, written: Option<&Path>) {
    eprintln!(
        "profile: {} syscalls allowed, {} than Docker's default ({}){}{}{}",
        report.allowed,
        fewer_or_more(report.reduction_vs_docker_default_percent),
        report.docker_default_allowed,
        written
            .map(|p| format!(" -> {}", p.display()))
            .unwrap_or_default(),
        match report.verified {
            Some(true) => "; verified under enforcement: PASS",
            Some(false) => "; verified under enforcement: FAIL",
            None => "",
        },
        match &report.verified_by {
            Some(by) if by.training_own => " (with training's own exercise)",
            _ => "",
        }
    );
}

//! `profile merge`: the union of what several profiles allow.
use std::{path::PathBuf, process::ExitCode};

use clap::Args;

use crate::{
    cli::{ProfileFormatArgs, load_profile},
    names::Abi,
    output,
    seccomp::{Context, Profile},
};

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The profiles to merge (in any format profile writes; `docker-default` for Docker's
    /// default).
    #[arg(required = true, num_args = 2.., value_name = "PROFILE")]
    pub inputs: Vec<PathBuf>,
    /// Where to write the merged profile (atomically) [default: stdout].
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// Merge even when the inputs differ in default action or architectures (the first
    /// input's are kept).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub format: ProfileFormatArgs,
}

pub async fn merge(args: MergeArgs) -> anyhow::Result<ExitCode> {
    if let Some(out) = &args.output {
        output::check_writable(out)?;
    }
    let mut inputs = Vec::new();
    for path in &args.inputs {
        inputs.push((path.display().to_string(), load_profile(path)?));
    }
    let merged = Profile::merge(&inputs, args.force)?;
    // The merge means the union under runc: nothing of any input lost, nothing added.
    let ctx = Context::docker_default();
    let parts: Vec<&Profile> = inputs.iter().map(|(_, p)| p).collect();
    let beyond = merged.widenings_beyond_union(&parts, &ctx);
    if args.force && !beyond.is_empty() {
        eprintln!(
            "profile: warning: --force: the merged profile allows {} syscall(s) none of its inputs allowed as they were written (the first input's default action and architectures apply to all rules)",
            beyond.len()
        );
    } else if !beyond.is_empty() {
        return Err(crate::Error::NotWithin {
            what: "the merged profile".into(),
            base: "the union of its inputs".into(),
            widenings: beyond,
        }
        .into());
    }
    if !args.force {
        for (name, p) in &inputs {
            let lost = p.widenings(&merged, &ctx);
            if !lost.is_empty() {
                anyhow::bail!(
                    "the merged profile would deny what {name} allows: {}; nothing was written",
                    lost.iter()
                        .map(|w| w.to_string())
                        .collect::<Vec<_>>()
                        .join("; ")
                );
            }
        }
    }
    // The union holds; the platforms --arch adds are derived within Docker's default there.
    let mut merged = merged;
    (args.format).derive(
        &mut merged,
        &Profile::docker_default(),
        "docker-default",
        &ctx,
    )?;
    args.format.write(args.output.as_deref(), &merged, None)?;
    let allowed = merged
        .allowed(Abi::X86_64, &Context::docker_default())
        .len();
    let to = match args.format.arch.len() {
        0 => output::file(args.output.as_deref()).map(|p| format!(" -> {}", p.display())),
        _ => Some(format!(
            " -> {}",
            args.format.written_as(args.output.as_deref())
        )),
    };
    eprintln!(
        "profile: merged {} profiles: {allowed} syscalls allowed{}",
        inputs.len(),
        to.unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

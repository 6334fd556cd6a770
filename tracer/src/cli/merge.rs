//! `profile merge`: the union of what several profiles allow.
use std::{path::PathBuf, process::ExitCode};

use clap::Args;

use super::args::{MkdirArgs, ProfileFormatArgs, load_profile};
use crate::{
    hardening::{
        Recipe,
        merge::{merged_words, union},
    },
    names::Abi,
    output,
    seccomp::{Context, merge::merge},
};

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The profiles to merge (in any format profile writes; `docker-default` for Docker's
    /// default), or the least-privilege recipes (train --hardening): capabilities and tmpfs
    /// united, a read-only root and no-new-privileges only where all agree, a user only where
    /// all have the same.
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
    #[command(flatten)]
    pub mkdir: MkdirArgs,
}

pub async fn run(args: MergeArgs) -> anyhow::Result<ExitCode> {
    if let Some(out) = &args.output {
        args.mkdir.check(out)?;
    }
    let recipes = args
        .inputs
        .iter()
        .map(|p| Recipe::read_if_recipe(p))
        .collect::<Result<Vec<_>, _>>()?;
    if recipes.iter().any(Option::is_some) {
        return merge_recipes(&args, recipes);
    }
    let mut inputs = Vec::new();
    for path in &args.inputs {
        inputs.push((path.display().to_string(), load_profile(path)?));
    }
    let ctx = Context::docker_default();
    let rendering = args.format.rendering();
    let merged = merge(&inputs, args.force, &rendering.arches, &ctx)?;
    if !merged.beyond_inputs.is_empty() {
        eprintln!(
            "profile: warning: --force: the merged profile allows {} syscall(s) none of its inputs allowed as they were written (the first input's default action and architectures apply to all rules)",
            merged.beyond_inputs.len()
        );
    }
    rendering.write(args.output.as_deref(), &merged.profile, None)?;
    // Several platforms: where each one's profile went.
    let to = match rendering.arches.is_empty() {
        true => output::file(args.output.as_deref()).map(|p| p.display().to_string()),
        false => Some(rendering.written_as(args.output.as_deref())),
    };
    eprintln!(
        "profile: merged {} profiles: {} syscalls allowed{}",
        inputs.len(),
        merged.profile.allowed(Abi::X86_64, &ctx).len(),
        to.map(|to| format!(" -> {to}")).unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

/// `merge` of least-privilege recipes: one that holds for all of them.
fn merge_recipes(args: &MergeArgs, read: Vec<Option<Recipe>>) -> anyhow::Result<ExitCode> {
    let mut recipes = Vec::new();
    for (path, recipe) in args.inputs.iter().zip(read) {
        let Some(recipe) = recipe else {
            anyhow::bail!(
                "{}: not a least-privilege recipe, and a recipe merges only with recipes",
                path.display()
            );
        };
        recipes.push(recipe);
    }
    let merged = union(&recipes).ok_or_else(|| anyhow::anyhow!("nothing to merge"))?;
    let text = merged.to_json()?;
    match &args.output {
        Some(out) => output::write_atomic(out, text.as_bytes())?,
        None => output::stdout(&text)?,
    }
    eprintln!(
        "profile: {}{}",
        merged_words(&merged, recipes.len()),
        args.output
            .as_ref()
            .map(|p| format!(" -> {}", p.display()))
            .unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

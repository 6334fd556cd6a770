//! `profile completions SHELL`: the shell's completions of `profile`, from its own definition.
use std::process::ExitCode;

use clap::{Args, CommandFactory as _, ValueEnum};

/// The shells completions are written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete `profile` in.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: Shell,
}

/// The completions of `profile` for `shell`, as the release tarball ships them.
pub fn completions(shell: Shell) -> Vec<u8> {
    let generator = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut bytes = Vec::new();
    clap_complete::generate(generator, &mut super::Cli::command(), "profile", &mut bytes);
    bytes
}

pub async fn run(args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    crate::output::stdout(&String::from_utf8_lossy(&completions(args.shell)))?;
    Ok(ExitCode::SUCCESS)
}

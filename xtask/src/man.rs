//! The man pages of `profile` and of each subcommand (`profile-train.1`, …), generated from
//! the command line's own definition: a SYNOPSIS that names each option's value, no page for
//! `help`, and the release's version (the shipped executable's, not this build's target).
use anyhow::Context as _;
use clap::CommandFactory as _;
use clap_mangen::{
    Man,
    roff::{Roff, bold, italic, roman},
};

use crate::dist::VERSION;

/// Each page's name and roff text: `profile` first, then one per subcommand.
pub fn pages() -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    // `profile help` is clap's, and needs no page of its own.
    let mut cli = tracer::cli::Cli::command().disable_help_subcommand(true);
    cli.build();
    let mut pages = vec![("profile".to_string(), page(cli.clone())?)];
    for sub in cli.get_subcommands() {
        if sub.is_hide_set() {
            continue;
        }
        // clap names commands with 'static strings; a dozen short ones live until exit.
        let name: &'static str = Box::leak(format!("profile-{}", sub.get_name()).into_boxed_str());
        let cmd = sub
            .clone()
            .name(name)
            .bin_name(format!("profile {}", sub.get_name()));
        pages.push((name.to_string(), page(cmd).with_context(|| name)?));
    }
    Ok(pages)
}

/// One page: clap_mangen's sections, with a synopsis of our own.
fn page(cmd: clap::Command) -> anyhow::Result<Vec<u8>> {
    // The version of the release, without this build's commit and target: xtask links the
    // host's (glibc) build, the tarball ships the musl one.
    let cmd = cmd.version(VERSION).long_version(None::<&'static str>);
    let man = Man::new(cmd.clone());
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    out.extend(synopsis(&cmd).render().into_bytes());
    man.render_description_section(&mut out)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut out)?;
    }
    if cmd.has_subcommands() {
        man.render_subcommands_section(&mut out)?;
    }
    if cmd.get_after_long_help().is_some() || cmd.get_after_help().is_some() {
        man.render_extra_section(&mut out)?;
    }
    man.render_version_section(&mut out)?;
    Ok(out)
}

/// `profile train --image IMAGE [-o|--output PROFILE] … [-- CMD…]`: every option with its
/// value, in the order `--help` lists them.
fn synopsis(cmd: &clap::Command) -> Roff {
    let mut line = vec![
        bold(cmd.get_bin_name().unwrap_or(cmd.get_name())),
        roman(" "),
    ];
    // Options first, then what goes after them: positionals, and `-- CMD` last.
    let mut args: Vec<&clap::Arg> = cmd.get_arguments().filter(|a| !a.is_hide_set()).collect();
    args.sort_by_key(|a| (a.is_positional(), a.is_last_set()));
    for arg in args {
        let (open, close) = match arg.is_required_set() {
            true => ("", ""),
            false => ("[", "]"),
        };
        let takes = arg.get_num_args().is_some_and(|n| n.takes_values());
        // A few possible values are named (`--probe http|none`), a value name otherwise.
        let possible: Vec<String> = arg
            .get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| v.get_name().to_string())
            .collect();
        let value = match arg.get_value_names() {
            _ if (1..=4).contains(&possible.len()) => possible.join("|"),
            Some(names) => names
                .iter()
                .map(|n| n.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            None => arg.get_id().as_str().to_uppercase(),
        };
        let many = matches!(
            arg.get_action(),
            clap::ArgAction::Append | clap::ArgAction::Count
        ) || arg.get_num_args().is_some_and(|n| n.max_values() > 1);
        line.push(roman(open));
        match (arg.get_short(), arg.get_long()) {
            (Some(short), Some(long)) => line.push(bold(format!("-{short}|--{long}"))),
            (Some(short), None) => line.push(bold(format!("-{short}"))),
            (None, Some(long)) => line.push(bold(format!("--{long}"))),
            (None, None) if arg.is_last_set() => line.push(bold("-- ")),
            (None, None) => {}
        }
        if takes {
            if arg.get_short().is_some() || arg.get_long().is_some() {
                line.push(roman(" "));
            }
            line.push(italic(value));
        }
        line.push(roman(close));
        if many {
            line.push(roman("..."));
        }
        line.push(roman(" "));
    }
    if cmd.has_subcommands() {
        line.push(italic("COMMAND"));
    }
    let mut roff = Roff::default();
    roff.control("SH", ["SYNOPSIS"]);
    roff.text(line);
    roff
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(name: &str) -> String {
        let pages = pages().expect("rendered");
        let (_, bytes) = pages
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no page {name}"));
        String::from_utf8_lossy(bytes).into_owned()
    }

    /// The SYNOPSIS section's roff text.
    fn synopsis_of(page: &str) -> String {
        let at = page.find(".SH SYNOPSIS").expect("a synopsis");
        let rest = &page[at..];
        let end = rest[3..].find(".SH").map_or(rest.len(), |e| e + 3);
        rest[..end].to_string()
    }

    #[test]
    fn the_synopsis_names_each_options_value() {
        let train = synopsis_of(&text("profile-train"));
        for option in [
            r"\fB\-\-image\fR \fIIMAGE\fR",
            r"[\fB\-o|\-\-output\fR \fIPROFILE\fR]",
            r"[\fB\-p|\-\-publish\fR \fI[[IP:]HOST:]CTR\fR]...",
            r"[\fB\-\-keep\fR]",
            r"[\fB\-\- \fR\fICMD\fR]...",
        ] {
            assert!(train.contains(option), "{option} not in {train}");
        }
        let completions = synopsis_of(&text("profile-completions"));
        assert!(
            completions.contains(r"\fIbash|zsh|fish\fR"),
            "{completions}"
        );
    }

    #[test]
    fn no_page_names_one_that_is_not_shipped_nor_the_build_target() {
        let pages = pages().expect("rendered");
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        assert!(!names.contains(&"profile-help"), "{names:?}");
        for (name, bytes) in &pages {
            let page = String::from_utf8_lossy(bytes);
            assert!(
                !page.contains(r"profile\-help"),
                "{name} names profile-help(1)"
            );
            assert!(!page.contains("gnu"), "{name} names this build's target");
            assert!(page.contains(&format!("v{VERSION}")), "{name}: its version");
        }
    }
}

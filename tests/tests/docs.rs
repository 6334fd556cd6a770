//! The README and the guide as a new user reads them: a front page that stays short, links
//! that lead somewhere, and commands that `profile` takes as they are written.
use std::path::{Path, PathBuf};

use clap::Parser as _;
use profile_tests::{Scratch, output_text, profile_bin};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

/// README.md and every page of docs/, by path.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md")];
    let docs = std::fs::read_dir(root().join("docs")).expect("docs/");
    let mut guide: Vec<PathBuf> = docs
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    guide.sort();
    pages.extend(guide);
    pages
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The lines of a page's ```sh blocks, continuation lines joined.
fn shell_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut in_sh = false;
    let mut pending = String::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_sh = !in_sh && line.trim() == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => pending.push_str(head),
            None => {
                pending.push_str(line);
                lines.push(std::mem::take(&mut pending));
            }
        }
    }
    lines
}

/// A command line split as sh splits it (quotes, `$(…)` kept as one word), up to a comment,
/// a redirection or a pipe.
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = line.chars().peekable();
    let (mut quote, mut depth) = (None, 0);
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') if depth == 0 => quote = Some(c),
            (None, '$') if chars.peek() == Some(&'(') => {
                depth += 1;
                word.push(c);
            }
            (None, ')') if depth > 0 => {
                depth -= 1;
                word.push(c);
            }
            (None, ' ') if depth == 0 => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            (None, '#' | '<' | '>' | '|' | ';') if depth == 0 && word.is_empty() => break,
            (None, c) => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

#[test]
fn the_readme_is_a_front_page() {
    let readme = read(&root().join("README.md"));
    let chars = readme.chars().count();
    assert!(chars <= 25_000, "README.md has {chars} characters");
    // The two set-up commands, exactly as CI and the demo run them.
    for command in [
        "scripts/host-setup.sh && cargo xtask demo",
        "scripts/host-setup.sh && cargo xtask test",
    ] {
        assert!(readme.contains(command), "{command}");
    }
    for page in ["docs/benchmark.md", "docs/runtime.md"] {
        assert!(readme.contains(&format!("]({page})")), "{page} is linked");
    }
}

/// A heading's anchor, as GitHub makes it.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn every_link_of_the_guide_leads_to_a_page_and_a_heading() {
    let link = |text: &str| -> Vec<String> {
        text.split("](")
            .skip(1)
            .filter_map(|rest| rest.split_once(')').map(|(l, _)| l.to_string()))
            .collect()
    };
    for page in pages() {
        let text = read(&page);
        for target in link(&text) {
            if target.starts_with("http") {
                continue;
            }
            let (file, fragment) = target.split_once('#').unwrap_or((&target, ""));
            let path = match file {
                "" => page.clone(),
                file => page.parent().expect("a folder").join(file),
            };
            assert!(path.exists(), "{}: {target} leads nowhere", page.display());
            if !fragment.is_empty() {
                let headings: Vec<String> = read(&path)
                    .lines()
                    .filter_map(|l| {
                        l.trim_start_matches('#')
                            .strip_prefix(' ')
                            .filter(|_| l.starts_with('#'))
                    })
                    .map(anchor)
                    .collect();
                assert!(
                    headings.iter().any(|h| h == fragment),
                    "{}: no heading #{fragment} in {}: {headings:?}",
                    page.display(),
                    path.display()
                );
            }
        }
    }
}

#[test]
fn every_complete_profile_command_of_the_guide_is_taken() {
    let mut checked = 0;
    for page in pages() {
        for line in shell_lines(&read(&page)) {
            let line = line.trim();
            // Synopses name their options' values in brackets: they are no command to run.
            if !line.starts_with("profile ")
                || ["[", "...", "…", "|"].iter().any(|s| line.contains(s))
            {
                continue;
            }
            let args = words(line);
            if let Err(err) = tracer::cli::Cli::try_parse_from(&args)
                && err.kind() != clap::error::ErrorKind::DisplayVersion
            {
                panic!("{}: `{line}` is refused:\n{err}", page.display());
            }
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} commands found");
}

/// The shell line of a page's ```sh blocks that writes `output`.
fn line_writing(page: &str, output: &str) -> String {
    shell_lines(&read(&root().join(page)))
        .into_iter()
        .find(|l| l.starts_with("profile ") && l.contains(&format!("-o {output}")))
        .unwrap_or_else(|| panic!("{page}: no command writes {output}"))
}

#[test]
fn the_complain_mode_recipe_makes_its_profile_without_a_warning() {
    let dir = Scratch::new("complain-recipe");
    let baseline = dir.path("web.json");
    // A trained profile, as the recipe's first line writes one.
    std::fs::copy(
        root().join("profiles/profile-example-web-latest.json"),
        &baseline,
    )
    .expect("copied");
    let line = line_writing("docs/complain-mode.md", "web.log.json");
    let bin = profile_bin();
    let path = format!(
        "{}:{}",
        bin.parent().expect("its folder").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&line)
        .current_dir(&dir.0)
        .env("PATH", path)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("sh");
    assert!(out.status.success(), "`{line}`: {}", output_text(&out));
    assert!(
        out.stderr.is_empty(),
        "`{line}` says: {}",
        output_text(&out)
    );
    let complain = dir.path("web.log.json");
    let written: serde_json::Value =
        serde_json::from_str(&read(&complain)).expect("a JSON profile");
    assert_eq!(written["defaultAction"], "SCMP_ACT_LOG", "`{line}`");
    let enforcing: serde_json::Value = serde_json::from_str(&read(&baseline)).expect("JSON");
    assert_eq!(written["syscalls"], enforcing["syscalls"], "the same rules");
}

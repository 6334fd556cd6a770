//! Where a learned profile goes when its file may hold one already: a run that did not
//! complete never replaces a profile (its partial one goes beside it, `keep.partial.json`),
//! and a completed run that replaces one says what changed.
use std::path::{Path, PathBuf};

use super::read::read_profile;
use crate::seccomp::{Context, Diff, Profile};

/// Where a profile is written, and what that does to the file there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Nothing was there.
    New(PathBuf),
    /// A complete profile replaces the one there; `changes` says what, in one line.
    Replaces { path: PathBuf, changes: String },
    /// The run did not complete: the profile at `kept` is left as it was, and the partial
    /// one goes to `partial`.
    Beside { kept: PathBuf, partial: PathBuf },
}

impl Placement {
    /// The file the profile is written to.
    pub fn path(&self) -> &Path {
        match self {
            Placement::New(path) | Placement::Replaces { path, .. } => path,
            Placement::Beside { partial, .. } => partial,
        }
    }

    /// What the placement did, in one line, when there is something to say.
    pub fn words(&self) -> Option<String> {
        match self {
            Placement::New(_) => None,
            Placement::Replaces { path, changes } => {
                Some(format!("{} replaced: {changes}", path.display()))
            }
            Placement::Beside { kept, partial } => Some(format!(
                "the run did not complete: {} is left as it was, and the partial profile is {}",
                kept.display(),
                partial.display()
            )),
        }
    }
}

/// Where `profile`, learned by a run that `complete`d or not, goes when asked for `path`.
pub fn place(path: &Path, complete: bool, profile: &Profile, ctx: &Context) -> Placement {
    if !path.exists() {
        return Placement::New(path.to_path_buf());
    }
    if !complete {
        return Placement::Beside {
            kept: path.to_path_buf(),
            partial: partial_path(path),
        };
    }
    let changes = match read_profile(path) {
        Ok(old) => change_words(&Diff::between(&old, profile, ctx)),
        Err(_) => "it held no profile that could be read".into(),
    };
    Placement::Replaces {
        path: path.to_path_buf(),
        changes,
    }
}

/// `keep.json` → `keep.partial.json`; `app` → `app.partial`.
pub fn partial_path(path: &Path) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}.partial.{}", ext.to_string_lossy()),
        None => format!("{stem}.partial"),
    };
    path.with_file_name(name)
}

/// What a diff changed, on one line: `+mkdir +rmdir -getsid +socket (more arguments)`.
fn change_words(diff: &Diff) -> String {
    let words: Vec<String> = diff
        .added
        .iter()
        .map(|n| format!("+{n}"))
        .chain(
            diff.widened
                .iter()
                .map(|w| format!("+{} (more arguments)", w.syscall)),
        )
        .chain(diff.removed.iter().map(|n| format!("-{n}")))
        .chain(
            diff.narrowed
                .iter()
                .map(|w| format!("-{} (fewer arguments)", w.syscall)),
        )
        .collect();
    match words.is_empty() {
        true => "it allows the same calls as before".into(),
        false => words.join(" "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_profile_goes_beside_the_one_it_does_not_replace() {
        let dir = std::env::temp_dir().join(format!("profile-place-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let keep = dir.join("keep.json");
        let ctx = Context::docker_default();
        let profile = |names: &[&str]| {
            let json = serde_json::json!({
                "defaultAction": "SCMP_ACT_ERRNO",
                "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}],
            });
            crate::formats::parse_profile(&json.to_string(), Path::new("p")).unwrap()
        };
        let old = profile(&["getsid", "read"]);
        assert_eq!(
            place(&keep, false, &old, &ctx),
            Placement::New(keep.clone())
        );
        std::fs::write(&keep, old.to_json().unwrap()).unwrap();
        let partial = place(&keep, false, &old, &ctx);
        assert_eq!(partial.path(), dir.join("keep.partial.json"));
        assert!(partial.words().unwrap().contains("is left as it was"));
        let new = place(&keep, true, &profile(&["mkdir", "read", "rmdir"]), &ctx);
        assert_eq!(new.path(), keep);
        assert_eq!(
            new.words().unwrap(),
            format!("{} replaced: +mkdir +rmdir -getsid", keep.display())
        );
        assert_eq!(
            place(&keep, true, &old, &ctx).words().unwrap(),
            format!(
                "{} replaced: it allows the same calls as before",
                keep.display()
            )
        );
        assert_eq!(partial_path(Path::new("a/app")), Path::new("a/app.partial"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

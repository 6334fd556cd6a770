//! Output files: checked for writability before any work starts, written atomically; `-`
//! names stdout, whose write errors are returned, not panicked on.
use std::{
    fs,
    io::Write as _,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

/// Whether `path` exists and is not a regular file (a device such as /dev/null or
/// /dev/stdout, a pipe): it is written in place, since renaming onto it would replace it.
fn is_special(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

/// Why an output could not be written (or, checked beforehand, could not be).
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{target}: {dir} is not a directory")]
    NotADirectory { target: PathBuf, dir: PathBuf },
    #[error("{path}: directory {dir} does not exist ({hint})")]
    NoDirectory {
        path: PathBuf,
        dir: PathBuf,
        hint: &'static str,
    },
    #[error("{path}: can't be written: {dir} accepts no new files")]
    NoNewFiles { path: PathBuf, dir: PathBuf },
    #[error("{first} and {second} name the same file ({path}): one would replace the other")]
    SameOutput {
        path: PathBuf,
        first: &'static str,
        second: &'static str,
    },
    #[error("writing to stdout: {source}")]
    Stdout { source: std::io::Error },
}

type Result<T, E = OutputError> = std::result::Result<T, E>;

/// Who the files `profile` writes should belong to, when not to the writer: `UID` or
/// `UID:GID`, numeric (a container's user database says nothing about the host's users).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileOwner {
    pub uid: u32,
    pub gid: Option<u32>,
}

impl std::str::FromStr for FileOwner {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let number = |part: &str| {
            part.parse::<u32>()
                .map_err(|_| format!("{s:?}: expected a numeric UID or UID:GID"))
        };
        match s.split_once(':') {
            Some((uid, gid)) => Ok(FileOwner {
                uid: number(uid)?,
                gid: Some(number(gid)?),
            }),
            None => Ok(FileOwner {
                uid: number(s)?,
                gid: None,
            }),
        }
    }
}

static OWNER: std::sync::OnceLock<FileOwner> = std::sync::OnceLock::new();

/// Every file written from now on gets `owner` (set once, by the command line).
pub fn set_owner(owner: FileOwner) {
    let _ = OWNER.set(owner);
}

/// Hands a freshly written file to the requested owner, if any.
fn chown(file: &fs::File) -> std::io::Result<()> {
    match OWNER.get() {
        Some(owner) => std::os::unix::fs::fchown(file, Some(owner.uid), owner.gid),
        None => Ok(()),
    }
}

fn io(path: impl Into<PathBuf>, source: std::io::Error) -> OutputError {
    OutputError::Io {
        path: path.into(),
        source,
    }
}

/// Stable, diff-friendly JSON: two-space indent, fields in declaration order, a trailing
/// newline. Every JSON `profile` writes goes through here.
pub fn json(value: &impl serde::Serialize) -> serde_json::Result<String> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    Ok(text)
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Whether `path` names stdout (`-`), in every command that writes.
pub fn is_stdout(path: &Path) -> bool {
    path == Path::new("-")
}

/// The file an output option names: `None` for stdout (no option where stdout is the
/// default, or `-`).
pub fn file(path: Option<&Path>) -> Option<&Path> {
    path.filter(|p| !is_stdout(p))
}

/// Writes `text` to stdout and flushes it: a full disk or a closed pipe is an error to report
/// (see [`is_broken_pipe`]), not a panic.
pub fn stdout(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|source| OutputError::Stdout { source })
}

/// Whether `err` is stdout's reader having gone away (`profile report … | head`).
pub fn is_broken_pipe(err: &OutputError) -> bool {
    matches!(err, OutputError::Stdout { source } if source.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Fails when two of `outputs` (option name, path) would be written to the same file.
/// Devices such as /dev/null may be named twice.
pub fn check_distinct(outputs: &[(&'static str, Option<&Path>)]) -> Result<()> {
    let named: Vec<(&'static str, &Path)> = outputs
        .iter()
        .filter_map(|&(option, path)| Some((option, path?)))
        .collect();
    for (i, &(first, a)) in named.iter().enumerate() {
        for &(second, b) in &named[i + 1..] {
            if same_file(a, b) {
                return Err(OutputError::SameOutput {
                    path: b.to_path_buf(),
                    first,
                    second,
                });
            }
        }
    }
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    if let (Ok(ma), Ok(mb)) = (fs::metadata(a), fs::metadata(b)) {
        return ma.is_file() && ma.dev() == mb.dev() && ma.ino() == mb.ino();
    }
    // Not both there yet: the same name in the same directory.
    let resolved = |p: &Path| Some(fs::canonicalize(parent_dir(p)).ok()?.join(p.file_name()?));
    a == b || matches!((resolved(a), resolved(b)), (Some(x), Some(y)) if x == y)
}

/// Fails now if `path` can't be written later: where its directory exists, a temporary file
/// is made and removed there. A directory that doesn't exist is refused, as `cp` refuses it,
/// unless `mkdir` and only it is missing: then it is checked in the directory above, and
/// created when the output is written (nothing is created for good before).
pub fn check_writable(path: &Path, mkdir: bool) -> Result<()> {
    if is_stdout(path) {
        return Ok(());
    }
    if path.is_dir() {
        return Err(io(
            path,
            std::io::Error::new(std::io::ErrorKind::IsADirectory, "is a directory"),
        ));
    }
    if is_special(path) {
        return writable_in_place(path);
    }
    let parent = parent_dir(path);
    if fs::symlink_metadata(&parent).is_err() {
        let above = parent_dir(&parent);
        let hint = match (mkdir, fs::symlink_metadata(&above).is_ok()) {
            (false, true) => "--mkdir creates it",
            (_, false) => {
                "--mkdir creates only the last directory, and the one above is missing too"
            }
            (true, true) => "",
        };
        if !hint.is_empty() {
            return Err(OutputError::NoDirectory {
                path: path.to_path_buf(),
                dir: parent,
                hint,
            });
        }
    }
    let Some(dir) = parent
        .ancestors()
        .map(|d| match d.as_os_str().is_empty() {
            true => Path::new("."),
            false => d,
        })
        .find(|d| fs::symlink_metadata(d).is_ok())
    else {
        return Err(io(
            &parent,
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    };
    if !dir.is_dir() {
        return Err(OutputError::NotADirectory {
            target: path.to_path_buf(),
            dir: dir.to_path_buf(),
        });
    }
    let tmp = dir.join(temp_path(path).file_name().unwrap_or_default());
    match fs::File::create(&tmp) {
        Ok(_) => {
            let _ = fs::remove_file(&tmp);
            Ok(())
        }
        // The directory is there, yet creating in it says "not found": /proc, /sys.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(OutputError::NoNewFiles {
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
        }),
        Err(e) => Err(io(path, e)),
    }
}

/// Whether a device or pipe may be opened for writing. A pipe is not opened: that would block
/// until a reader comes, and closing it would hand that reader an early end of file.
fn writable_in_place(path: &Path) -> Result<()> {
    use std::os::unix::{ffi::OsStrExt as _, fs::FileTypeExt as _};
    let is_fifo = fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo());
    if !is_fifo {
        return fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map(drop)
            .map_err(|e| io(path, e));
    }
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|e| {
        io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
        )
    })?;
    // SAFETY: access(2) reads a NUL-terminated path that lives through the call.
    if unsafe { libc::access(c_path.as_ptr(), libc::W_OK) } == 0 {
        Ok(())
    } else {
        Err(io(path, std::io::Error::last_os_error()))
    }
}

/// Writes `contents` to a temporary file beside `path`, syncs it and renames it into place, so
/// readers see the old file or the new one, never half of one.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    if is_stdout(path) {
        return stdout(&String::from_utf8_lossy(contents));
    }
    if is_special(path) {
        return fs::OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|mut f| f.write_all(contents))
            .map_err(|e| io(path, e));
    }
    // Only the last directory, which the check allowed (`--mkdir`, or a default path).
    let dir = parent_dir(path);
    if !dir.is_dir() {
        fs::create_dir(&dir).map_err(|e| io(&dir, e))?;
    }
    let tmp = temp_path(path);
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(contents)?;
        chown(&file)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(io(path, e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = std::env::temp_dir().join(format!("profile-output-{}", std::process::id()));
        let path = dir.join("sub/p.json");
        fs::create_dir_all(&dir).unwrap();
        check_writable(&path, true).unwrap();
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let entries: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(entries.len(), 1);
        assert!(check_writable(&dir, false).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn checking_creates_no_directory() {
        let dir = std::env::temp_dir().join(format!("profile-output-new-{}", std::process::id()));
        let path = dir.join("p.json");
        check_writable(&path, true).unwrap();
        assert!(!dir.exists(), "the check must not create {}", dir.display());
        let relative = PathBuf::from(format!("profile-output-rel-{}/p.json", std::process::id()));
        check_writable(&relative, true).unwrap();
        assert!(!relative.parent().unwrap().exists());
    }

    #[test]
    fn a_missing_directory_is_refused_unless_asked_and_only_the_last() {
        let dir = std::env::temp_dir().join(format!("profile-output-mkdir-{}", std::process::id()));
        let path = dir.join("p.json");
        assert_eq!(
            check_writable(&path, false).unwrap_err().to_string(),
            format!(
                "{}: directory {} does not exist (--mkdir creates it)",
                path.display(),
                dir.display()
            )
        );
        let deeper = dir.join("a/p.json");
        assert!(
            check_writable(&deeper, true)
                .unwrap_err()
                .to_string()
                .contains("--mkdir creates only the last directory")
        );
        check_writable(&path, true).unwrap();
        write_atomic(&path, b"{}").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"{}");
        // Nothing above the last directory is ever made.
        assert!(write_atomic(&dir.join("b/c/p.json"), b"{}").is_err());
        assert!(!dir.join("b").exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_in_the_way_is_not_a_directory() {
        let dir = std::env::temp_dir().join(format!("profile-output-ro-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let ro = dir.join("ro");
        fs::write(&ro, "").unwrap();
        let err = check_writable(&ro.join("x.json"), false).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}/x.json: {} is not a directory",
                ro.display(),
                ro.display()
            )
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn proc_accepts_no_new_files() {
        let err = check_writable(Path::new("/proc/version"), false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/proc/version: can't be written: /proc accepts no new files"
        );
    }

    #[test]
    fn dash_is_stdout_and_outputs_must_differ() {
        assert_eq!(file(Some(Path::new("-"))), None);
        assert_eq!(file(Some(Path::new("p.json"))), Some(Path::new("p.json")));
        check_writable(Path::new("-"), false).unwrap();
        let p = Path::new("p.json");
        let err = check_distinct(&[("-o", Some(p)), ("--report", Some(Path::new("./p.json")))])
            .unwrap_err();
        assert!(matches!(err, OutputError::SameOutput { .. }), "{err}");
        check_distinct(&[("-o", Some(p)), ("--report", Some(Path::new("r.json")))]).unwrap();
        check_distinct(&[("-o", Some(p)), ("--report", None)]).unwrap();
        let null = Some(Path::new("/dev/null"));
        check_distinct(&[("-o", null), ("--report", null)]).unwrap();
    }

    #[test]
    fn pipes_are_written_in_place_not_replaced() {
        use std::{io::Read as _, os::unix::fs::FileTypeExt as _, sync::mpsc, time::Duration};
        let dir = std::env::temp_dir().join(format!("profile-output-fifo-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("out.json");
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo(3) reads a NUL-terminated path that lives through the call.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        // The check doesn't wait for a reader (nor would it end a reader's input early).
        let (tx, rx) = mpsc::channel();
        let checked = fifo.clone();
        std::thread::spawn(move || {
            let _ = tx.send(check_writable(&checked, false).is_ok());
        });
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(true));
        let (tx, rx) = mpsc::channel();
        let reader = fifo.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            let read = fs::File::open(&reader).and_then(|mut f| f.read_to_string(&mut text));
            let _ = tx.send(read.map(|_| text));
        });
        write_atomic(&fifo, b"{}\n").unwrap();
        let read = rx.recv_timeout(Duration::from_secs(5));
        assert!(
            fs::metadata(&fifo).unwrap().file_type().is_fifo(),
            "replaced"
        );
        assert_eq!(read.expect("the reader got the text").unwrap(), "{}\n");
        fs::remove_dir_all(&dir).unwrap();
    }
}

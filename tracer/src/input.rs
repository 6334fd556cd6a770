//! Input files: profiles are read whole, from regular files or stdin (`-`), within a size limit;
//! logs are streamed.
use std::{
    fs,
    io::Read,
    os::unix::fs::FileTypeExt as _,
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
};

/// Why an input could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: not a regular file ({kind}); profiles are read from files, or from stdin as `-`"
    )]
    NotAFile { path: PathBuf, kind: &'static str },
    #[error("{path}: not a regular file ({kind}); logs are read from files, or from stdin as `-`")]
    NotALog { path: PathBuf, kind: &'static str },
    #[error("{path}: larger than {limit_mib} MiB, too large for a profile")]
    TooLarge { path: PathBuf, limit_mib: u64 },
    #[error("stdin (`-`) can be read only once")]
    StdinTwice,
}

type Result<T, E = InputError> = std::result::Result<T, E>;

fn io(path: &Path, source: std::io::Error) -> InputError {
    InputError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The largest input read: Docker's own default profile is about 20 KiB.
pub const MAX_INPUT_MIB: u64 = 64;

const MAX_INPUT_BYTES: u64 = MAX_INPUT_MIB << 20;

/// Whether `path` names stdin (`-`).
pub fn is_stdin(path: &Path) -> bool {
    path == Path::new("-")
}

/// Takes stdin for one reader: it can be read only once per process.
fn claim_stdin() -> Result<()> {
    static STDIN_READ: AtomicBool = AtomicBool::new(false);
    if STDIN_READ.swap(true, Ordering::SeqCst) {
        return Err(InputError::StdinTwice);
    }
    Ok(())
}

/// A log to read line by line (`-` for stdin, once per process): a regular file of any size,
/// since it is streamed, not held; anything else (a directory, a device) is refused.
pub fn open_log(path: &Path) -> Result<Box<dyn std::io::BufRead>> {
    if is_stdin(path) {
        claim_stdin()?;
        return Ok(Box::new(std::io::BufReader::new(std::io::stdin())));
    }
    let meta = fs::metadata(path).map_err(|e| io(path, e))?;
    if !meta.is_file() {
        return Err(InputError::NotALog {
            path: path.to_path_buf(),
            kind: kind(&meta.file_type()),
        });
    }
    let file = fs::File::open(path).map_err(|e| io(path, e))?;
    Ok(Box::new(std::io::BufReader::new(file)))
}

/// The text of `path` (`-` for stdin, read once per process), refusing anything but a regular
/// file and anything larger than [`MAX_INPUT_MIB`], so that `/dev/zero` or a FIFO can't make
/// the reader grow or block.
pub fn read_text(path: &Path) -> Result<String> {
    if is_stdin(path) {
        claim_stdin()?;
        return read_bounded(std::io::stdin().lock(), path);
    }
    let meta = fs::metadata(path).map_err(|e| io(path, e))?;
    if !meta.is_file() {
        return Err(InputError::NotAFile {
            path: path.to_path_buf(),
            kind: kind(&meta.file_type()),
        });
    }
    if meta.len() > MAX_INPUT_BYTES {
        return Err(too_large(path));
    }
    let file = fs::File::open(path).map_err(|e| io(path, e))?;
    read_bounded(file, path)
}

/// Reads at most one byte past the limit, so a file that grows (or lies about its size, as
/// /proc files do) is still caught.
fn read_bounded(reader: impl Read, path: &Path) -> Result<String> {
    let mut text = String::new();
    reader
        .take(MAX_INPUT_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| io(path, e))?;
    if text.len() as u64 > MAX_INPUT_BYTES {
        return Err(too_large(path));
    }
    Ok(text)
}

fn too_large(path: &Path) -> InputError {
    InputError::TooLarge {
        path: path.to_path_buf(),
        limit_mib: MAX_INPUT_MIB,
    }
}

fn kind(t: &fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_directories_are_refused() {
        for (path, kind) in [("/dev/zero", "a character device"), ("/", "a directory")] {
            let err = read_text(Path::new(path)).unwrap_err();
            assert!(
                matches!(&err, InputError::NotAFile { kind: k, .. } if *k == kind),
                "{path}: {err}"
            );
        }
    }

    #[test]
    fn reading_stops_past_the_limit() {
        let err = read_bounded(std::io::repeat(b' '), Path::new("endless")).unwrap_err();
        assert!(matches!(err, InputError::TooLarge { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "endless: larger than 64 MiB, too large for a profile"
        );
        let text = read_bounded(&b"{}"[..], Path::new("small")).unwrap();
        assert_eq!(text, "{}");
    }

    #[test]
    fn logs_are_regular_files() {
        let err = open_log(Path::new("/dev/zero")).err().expect("refused");
        assert!(matches!(err, InputError::NotALog { .. }), "{err}");
        assert!(err.to_string().contains("logs are read from files"));
    }

    #[test]
    fn regular_files_are_read() {
        let path = std::env::temp_dir().join(format!("profile-input-{}", std::process::id()));
        fs::write(&path, "{\"defaultAction\":\"SCMP_ACT_ALLOW\"}").unwrap();
        assert!(read_text(&path).unwrap().contains("SCMP_ACT_ALLOW"));
        fs::remove_file(&path).unwrap();
    }
}

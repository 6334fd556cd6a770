//! Output files: checked for writability before any work starts, written atomically.
use std::{
    fs,
    io::Write as _,
    path::{Path, PathBuf},
};

/// Whether `path` exists and is not a regular file (a device such as /dev/null or
/// /dev/stdout, a pipe): it is written in place, since renaming onto it would replace it.
fn is_special(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

use crate::error::{Error, Result};

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

/// Fails now if `path` can't be written later: its directory is created if missing, and a
/// temporary file is made and removed there.
pub fn check_writable(path: &Path) -> Result<()> {
    if path.is_dir() {
        return Err(Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::IsADirectory, "is a directory"),
        ));
    }
    if is_special(path) {
        return fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map(drop)
            .map_err(|e| Error::io(path, e));
    }
    let dir = parent_dir(path);
    fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let tmp = temp_path(path);
    fs::File::create(&tmp).map_err(|e| Error::io(path, e))?;
    let _ = fs::remove_file(&tmp);
    Ok(())
}

/// Writes `contents` to a temporary file beside `path`, syncs it and renames it into place, so
/// readers see the old file or the new one, never half of one.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    if is_special(path) {
        return fs::OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|mut f| f.write_all(contents))
            .map_err(|e| Error::io(path, e));
    }
    let dir = parent_dir(path);
    fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let tmp = temp_path(path);
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io(path, e));
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
        check_writable(&path).unwrap();
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let entries: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(entries.len(), 1);
        assert!(check_writable(&dir).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn devices_are_written_in_place_not_replaced() {
        use std::os::unix::fs::FileTypeExt as _;
        let null = Path::new("/dev/null");
        check_writable(null).unwrap();
        write_atomic(null, b"discarded").unwrap();
        assert!(fs::metadata(null).unwrap().file_type().is_char_device());
    }
}

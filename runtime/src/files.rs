//! Files the runtime writes (the self-check's verdicts, saved sessions): always through a
//! temporary file in the same directory, fsynced, then renamed over the target, so a crash at
//! any point leaves either the old file or the new one, never a torn one.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Writes `bytes` to `path` atomically (creating the parent directory when missing).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = AtomicFile::create(path)?;
    file.write_all(bytes)?;
    file.commit()
}

/// A replacement for a file, written piece by piece beside it and put in its place by
/// [`AtomicFile::commit`]; dropped before that, it leaves the old file untouched.
pub struct AtomicFile {
    tmp: tempfile::NamedTempFile,
    path: PathBuf,
}

impl AtomicFile {
    /// Starts `path`'s replacement in its directory (created when missing).
    pub fn create(path: &Path) -> Result<Self> {
        let dir = parent_dir(path);
        std::fs::create_dir_all(dir).map_err(Error::io("create directory", dir))?;
        let tmp = tempfile::Builder::new()
            .prefix(".voyager-")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(Error::io("create a temporary file in", dir))?;
        Ok(Self {
            tmp,
            path: path.to_path_buf(),
        })
    }

    pub fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        let tmp_path = self.tmp.path().to_path_buf();
        self.tmp
            .write_all(bytes)
            .map_err(Error::io("write", tmp_path))
    }

    /// Syncs the data, renames it over the target and syncs the directory, so the rename is
    /// durable too (where that is possible).
    pub fn commit(self) -> Result<()> {
        let tmp_path = self.tmp.path().to_path_buf();
        self.tmp
            .as_file()
            .sync_all()
            .map_err(Error::io("sync", tmp_path))?;
        let path = self.path;
        self.tmp
            .persist(&path)
            .map_err(|e| Error::io("rename onto", &path)(e.error))?;
        #[cfg(unix)]
        if let Ok(d) = std::fs::File::open(parent_dir(&path)) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// Streams into the temporary file (for writers that take `std::io::Write`).
impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tmp.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.tmp.flush()
    }
}

fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// `voyager/<name>` in the user's cache directory, or in `$VOYAGER_CACHE_DIR` when set.
pub fn cache_dir(name: &str) -> Option<PathBuf> {
    let base = match std::env::var_os("VOYAGER_CACHE_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => dirs::cache_dir()?.join("voyager"),
    };
    Some(base.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("f.json");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["f.json"], "no temporary file is left behind");
    }
}

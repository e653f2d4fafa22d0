//! Before SQLite opens a file: whether this process may write it and the files SQLite keeps
//! beside it, said with the path and the OS's reason. SQLite itself only reports "unable to open
//! database file" (or, for a file it can read but not write, fails deep inside a migration).

use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::path::Path;

use bankgate_core::DomainError;

/// What to do when the file is someone else's.
const OWNER_FIX: &str = "run bankgate as the user that owns it, or give that user write access \
                         (chown/chmod), or choose another file with --database";

/// Opens (creating, readable and writable by this user only) the database file and its `-wal`
/// and `-shm` companions, so that a refusal names the file and the reason.
/// `pending` says how many migrations a file still needs, reading only.
pub fn check(
    path: &Path,
    shown: &str,
    pending: impl Fn(&Path) -> Option<usize>,
) -> Result<(), DomainError> {
    match open_rw(path, false) {
        Ok(()) => {}
        Err(error) if error.kind() == ErrorKind::NotFound => {
            open_rw(path, true).map_err(|error| {
                DomainError::Unavailable(format!(
                    "cannot create the database file {shown}: {error}; choose a directory this \
                     user may write to (--database sqlite:///PATH) or run bankgate as a user who \
                     may write here"
                ))
            })?;
        }
        Err(error) => {
            let what = match pending(path) {
                Some(n) if n > 0 => format!(
                    "the database file {shown} needs migrating ({n} schema change{} for this \
                     version of bankgate) but cannot be written",
                    if n == 1 { "" } else { "s" }
                ),
                _ => format!("the database file {shown} cannot be opened for writing"),
            };
            return Err(DomainError::Unavailable(format!(
                "{what}: {error}; {OWNER_FIX}"
            )));
        }
    }
    for suffix in ["-wal", "-shm"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        let side = Path::new(&side);
        if let Err(error) = open_rw(side, true) {
            return Err(DomainError::Unavailable(format!(
                "cannot write {shown}{suffix}, which SQLite keeps beside the database: {error}; \
                 the directory must be writable by this user ({OWNER_FIX})"
            )));
        }
    }
    Ok(())
}

fn open_rw(path: &Path, create: bool) -> std::io::Result<()> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(create);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Secrets' digests and tokens live here: this user only.
        options.mode(0o600);
    }
    options.open(path).map(drop)
}

//! The Unix socket file a server removes at exit: only while it is still the socket that
//! server bound (same device and inode as recorded at bind), never a file that replaced it
//! nor the socket of another server that bound the path after ours was removed.
//!
//! The server holds the file open (`O_PATH`) until then: while it is open its inode cannot
//! be freed and reused by a file created at the path after our listener closed.
//!
//! A restart hands the file on with the socket (role `unix`, see `activation.rs`) and its
//! identity in `GREET_UNIX_FILE=DEV:INO`, so that the new server compares against what was
//! bound, not against whatever is at the path when it starts.

use std::fs::File;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The variable that passes a socket file's identity to a restarted server.
pub const VAR: &str = "GREET_UNIX_FILE";

/// A file's identity: device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    /// The identity of the socket file at `path` (not following a symbolic link).
    pub fn of(path: &Path) -> std::io::Result<FileId> {
        FileId::of_meta(&std::fs::symlink_metadata(path)?)
    }

    fn of_meta(meta: &std::fs::Metadata) -> std::io::Result<FileId> {
        if !meta.file_type().is_socket() {
            return Err(std::io::Error::other("not a socket"));
        }
        Ok(FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// `DEV:INO`, the value of [`VAR`].
    pub fn to_env(self) -> String {
        format!("{}:{}", self.dev, self.ino)
    }

    fn parse(text: &str) -> Option<FileId> {
        let (dev, ino) = text.trim().split_once(':')?;
        Some(FileId {
            dev: dev.parse().ok()?,
            ino: ino.parse().ok()?,
        })
    }
}

/// In a server started by a restart: the identity [`VAR`] passes on, the variable removed.
/// Call it before any thread starts.
pub fn take_passed() -> Option<FileId> {
    let value = std::env::var(VAR).ok();
    // No other thread exists yet, so nothing reads the environment meanwhile.
    std::env::remove_var(VAR);
    value.as_deref().and_then(FileId::parse)
}

/// A socket file this server may remove at exit.
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    id: FileId,
    /// The file itself (`O_PATH`), so that its inode stays ours until it is removed.
    _held: File,
}

impl SocketFile {
    /// The file this server just bound at `path`; `None` (and a warning) when it is already
    /// gone or replaced, so that nothing is removed at exit.
    pub fn bound(path: &Path) -> Option<SocketFile> {
        SocketFile::open(path, None)
    }

    /// A file handed on by a restart: this server's only while it is `passed`, the socket
    /// the old server bound; without it (an older server), whatever socket is at `path` now.
    pub fn handed(path: &Path, passed: Option<FileId>) -> Option<SocketFile> {
        SocketFile::open(path, passed)
    }

    fn open(path: &Path, want: Option<FileId>) -> Option<SocketFile> {
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_NOFOLLOW)
            .open(path)
            .and_then(|file| {
                let id = FileId::of_meta(&file.metadata()?)?;
                match want {
                    Some(want) if want != id => {
                        Err(std::io::Error::other("another file than the socket bound"))
                    }
                    _ => Ok((file, id)),
                }
            });
        match opened {
            Ok((file, id)) => Some(SocketFile {
                path: path.to_path_buf(),
                id,
                _held: file,
            }),
            Err(e) => {
                log::warn!("{}: {e}; it will not be removed at exit", path.display());
                None
            }
        }
    }

    /// The file's identity, to pass on at a restart.
    pub fn id(&self) -> FileId {
        self.id
    }

    /// Removes the file if it is still the socket this server bound.
    pub fn remove(&self) {
        let shown = self.path.display();
        match FileId::of(&self.path) {
            Ok(id) if id == self.id => {
                if let Err(e) = std::fs::remove_file(&self.path) {
                    log::warn!("remove {shown}: {e}");
                }
            }
            Ok(_) => log::info!("{shown} is another socket now; not removed"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => log::info!("{shown}: {e}; not removed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::TestDir;

    #[test]
    fn only_the_socket_that_was_bound_is_removed() {
        let dir = TestDir::new("socket-file");
        let path = dir.join("s");

        let ours = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let file = SocketFile::bound(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let theirs = std::os::unix::net::UnixListener::bind(&path).unwrap();
        file.remove();
        assert!(path.exists(), "another socket at the path was removed");

        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"x").unwrap();
        file.remove();
        assert_eq!(std::fs::read(&path).unwrap(), b"x");

        std::fs::remove_file(&path).unwrap();
        drop((ours, theirs));
        let _again = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let file = SocketFile::bound(&path).unwrap();
        let passed = FileId::parse(&file.id().to_env()).unwrap();
        drop(file);
        SocketFile::handed(&path, Some(passed)).unwrap().remove();
        assert!(!path.exists(), "its own socket is removed");
    }
}

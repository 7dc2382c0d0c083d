//! For unit tests: a new empty folder per test, unique across the tests of this process and
//! across processes, removed when dropped (also when the test fails).

use std::path::{Path, PathBuf};

/// A folder `$TMPDIR/greet-server-PID-NAME`, empty at first.
#[derive(Debug)]
pub(crate) struct TestDir(PathBuf);

impl TestDir {
    /// `name` must be unique among the crate's tests.
    pub(crate) fn new(name: &str) -> TestDir {
        let dir = std::env::temp_dir().join(format!("greet-server-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a test folder");
        TestDir(dir)
    }

    /// The path of `name` in it.
    pub(crate) fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

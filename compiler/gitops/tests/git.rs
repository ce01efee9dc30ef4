//! A Git repository driven by the real `git` binary.

use std::path::{Path, PathBuf};

pub(crate) use ringfence_testkit::git::git;

/// A repository in a temp dir (removed on drop).
pub(crate) struct Repo {
    _dir: tempfile::TempDir,
    /// Its working tree.
    pub(crate) root: PathBuf,
}

/// The workspace root.
pub(crate) fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

impl Repo {
    /// A new repository on branch `main` holding `policies-example/*.kdl`
    /// under `sub` (`""` for the root), committed.
    pub(crate) fn example(sub: &str) -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        git(&root, &["init", "-q", "-b", "main"]);
        let target = root.join(sub);
        std::fs::create_dir_all(&target).unwrap();
        for e in std::fs::read_dir(workspace().join("policies-example")).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "kdl") {
                std::fs::copy(&p, target.join(p.file_name().unwrap())).unwrap();
            }
        }
        let r = Repo { _dir: dir, root };
        r.commit("the example intent");
        r
    }

    /// Replace `from` by `to` in a file (relative to the root); it must occur.
    pub(crate) fn edit(&self, file: &str, from: &str, to: &str) {
        let p = self.root.join(file);
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains(from), "{file} has no `{from}`");
        std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
    }

    /// Commit everything; the new commit id.
    pub(crate) fn commit(&self, msg: &str) -> String {
        git(&self.root, &["add", "-A"]);
        git(&self.root, &["commit", "-q", "-m", msg]);
        git(&self.root, &["rev-parse", "HEAD"])
    }
}

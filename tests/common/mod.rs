//! Helpers shared by the integration tests over the `trainer` binary (tests/cli.rs, tests/export.rs).
// Each test crate uses a different subset of these.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures").join(name)
}

pub fn base_model() -> PathBuf {
    let path = std::env::var_os("MULTITAG_BASE_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".cache/models/all-MiniLM-L6-v2"));
    assert!(
        path.join("model.safetensors").is_file(),
        "base model missing at {}: run `trainer fetch-model` (scripts/test.sh does)",
        path.display()
    );
    path
}

pub fn trainer(args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trainer"));
    cmd.args(args)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start trainer");
    if let Some(text) = stdin {
        use std::io::Write;
        // A trainer that fails early stops reading; its exit status is what the test checks.
        let _ = child.stdin.take().unwrap().write_all(text.as_bytes());
    } else {
        drop(child.stdin.take());
    }
    child.wait_with_output().expect("trainer output")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The command failed, and its error says `says`.
#[track_caller]
pub fn assert_refused(o: &Output, says: &str) {
    let err = stderr(o);
    assert!(!o.status.success(), "should have failed: {err}");
    assert!(err.contains(says), "expected `{says}` in: {err}");
}

/// A fresh, empty scratch directory for one test of this process, removed when dropped (also when
/// the test fails): trained models are tens of megabytes each and CI machines can be short of disk.
pub struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn scratch(name: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("multitag-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

/// `trainer train` from the base model on the fixture catalog (tests/fixtures/catalog_small.csv)
/// into `out`, batch 4, with `extra` options (which may override `--batch-size`).
pub fn train_on_fixture(out: &Path, extra: &[&str]) -> Output {
    let catalog = fixture("catalog_small.csv");
    let base = base_model();
    let mut args = vec![
        "train",
        "--model",
        base.to_str().unwrap(),
        "--catalog",
        catalog.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    if !extra.contains(&"--batch-size") {
        args.extend_from_slice(&["--batch-size", "4"]);
    }
    args.extend_from_slice(extra);
    trainer(&args, None)
}

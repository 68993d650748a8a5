//! Output directories under hostile use: `--out` naming someone else's directory or the current
//! one, runs killed while replacing the checkpoint, and `--resume` asked with other options.
//! Nothing a user had is deleted, nothing a run wrote is lost, and refusals come before any work.
mod common;

use std::path::Path;
use std::process::Output;

use common::{fixture, scratch, stderr, train_on_fixture, trainer};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `trainer train` on the fixture catalog at lr 1e-4.
fn train(out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["--lr", "1e-4"];
    args.extend_from_slice(extra);
    train_on_fixture(out, &args)
}

fn metrics_epochs(out: &Path) -> Vec<u64> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["epoch"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

#[test]
fn train_and_export_keep_what_they_did_not_write() {
    let dir = scratch("foreign-out");
    let out = dir.join("model");
    std::fs::create_dir_all(out.join("notes")).unwrap();
    std::fs::write(out.join("notes/plan.txt"), "keep me").unwrap();
    std::fs::write(out.join("README.txt"), "mine").unwrap();

    // Refused at once, naming what is there, with nothing written.
    let refused = train(&out, &["--epochs", "1"]);
    assert!(!refused.status.success());
    let err = stderr(&refused);
    assert!(
        err.contains("README.txt") && err.contains("--force"),
        "{err}"
    );
    assert!(!out.join("model.safetensors").exists());

    // With --force it trains beside them and keeps them, and every epoch stays in the log.
    let trained = train(&out, &["--epochs", "2", "--patience", "5", "--force"]);
    assert!(trained.status.success(), "{}", stderr(&trained));
    assert_eq!(
        std::fs::read_to_string(out.join("README.txt")).unwrap(),
        "mine"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("notes/plan.txt")).unwrap(),
        "keep me"
    );
    assert_eq!(metrics_epochs(&out), vec![1, 2]);
    assert!(out.join("checkpoint/state.json").is_file());

    // The same for an export into a directory with a user's file and folder.
    let web = dir.join("web");
    std::fs::create_dir_all(web.join("assets")).unwrap();
    std::fs::write(web.join("index.html"), "<html>").unwrap();
    let catalog = fixture("catalog_small.csv");
    let export = |extra: &[&str]| {
        let mut args = vec![
            "export",
            "--model",
            s(&out),
            "--quant",
            "q8_0",
            "--out",
            s(&web),
            "--catalog",
            s(&catalog),
        ];
        args.extend_from_slice(extra);
        trainer(&args, None)
    };
    let refused = export(&[]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("index.html"),
        "{}",
        stderr(&refused)
    );
    let exported = export(&["--force"]);
    assert!(exported.status.success(), "{}", stderr(&exported));
    assert!(web.join("assets").is_dir());
    assert_eq!(
        std::fs::read_to_string(web.join("index.html")).unwrap(),
        "<html>"
    );
    for f in [
        "model.gguf",
        "tokenizer.json",
        "examples.json",
        "manifest.json",
    ] {
        assert!(web.join(f).is_file(), "missing {f}");
    }
    // A second export into it is ours now: no --force needed, no staging left behind.
    let again = export(&[]);
    assert!(again.status.success(), "{}", stderr(&again));
    let hidden: Vec<String> = std::fs::read_dir(&web)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");
}

#[test]
fn the_current_directory_is_refused_before_any_work() {
    // The binary runs in the repository root.
    let started = std::time::Instant::now();
    let out = train(Path::new("."), &["--epochs", "1", "--force"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("current directory"),
        "{}",
        stderr(&out)
    );
    assert!(started.elapsed().as_secs() < 20, "refused only after work");
}

#[test]
fn a_kill_while_replacing_the_checkpoint_loses_nothing() {
    let dir = scratch("killed");
    let out = dir.join("model");
    let first = train(&out, &["--epochs", "1"]);
    assert!(first.status.success(), "{}", stderr(&first));

    // What a kill between the two renames of a checkpoint swap leaves (on systems without an
    // atomic exchange), and a kill after an epoch was logged but before it was checkpointed:
    // the checkpoint moved aside, a half-written staging directory, a log line too many. Pid 0
    // never runs a user process.
    std::fs::rename(out.join("checkpoint"), out.join(".checkpoint.old-0")).unwrap();
    std::fs::create_dir(out.join(".checkpoint.tmp-0")).unwrap();
    std::fs::write(out.join(".checkpoint.tmp-0/model.safetensors"), b"half").unwrap();
    let mut log = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let extra = log
        .lines()
        .next()
        .unwrap()
        .replace("\"epoch\":1", "\"epoch\":2");
    log.push_str(&extra);
    log.push('\n');
    std::fs::write(out.join("metrics.jsonl"), log).unwrap();

    let resumed = train(&out, &["--epochs", "2", "--resume"]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let err = stderr(&resumed);
    assert!(
        err.contains("restored") && err.contains("resuming after epoch 1"),
        "{err}"
    );
    assert_eq!(metrics_epochs(&out), vec![1, 2]);
    let hidden: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");
}

#[test]
fn resume_refuses_other_options_before_any_work() {
    let dir = scratch("resume-options");
    let out = dir.join("model");
    let first = train(&out, &["--epochs", "1", "--seed", "3"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let other = train(
        &out,
        &[
            "--epochs",
            "2",
            "--seed",
            "4",
            "--batch-size",
            "8",
            "--resume",
        ],
    );
    assert!(!other.status.success());
    let err = stderr(&other);
    assert!(
        err.contains("--seed 4 (checkpoint: 3)") && err.contains("--batch-size 8 (checkpoint: 4)"),
        "{err}"
    );
    // More epochs and another patience are a continuation, not another run.
    let more = train(
        &out,
        &[
            "--epochs",
            "2",
            "--seed",
            "3",
            "--patience",
            "4",
            "--resume",
        ],
    );
    assert!(more.status.success(), "{}", stderr(&more));
}

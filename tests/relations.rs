//! Relation extraction end to end (`--task relations`): a tiny SpERT JSON dataset
//! (tests/fixtures/relations) trains, evaluates and tags from the base model, and the saved
//! model predicts exactly what the model in training did.
mod common;

use std::path::Path;

use common::{assert_refused, base_model, fixture, scratch, stderr, trainer};
use serde_json::Value;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `trainer COMMAND --task relations` from the base model into `out`, on `data`, with `extra`.
fn run(command: &str, out: &Path, data: &[&str], extra: &[&str]) -> std::process::Output {
    let base = base_model();
    let mut args = vec![
        command,
        "--task",
        "relations",
        "--model",
        s(&base),
        "--out",
        s(out),
    ];
    args.extend_from_slice(data);
    args.extend_from_slice(extra);
    trainer(&args, None)
}

fn train(out: &Path, data: &[&str], extra: &[&str]) -> std::process::Output {
    run("train", out, data, extra)
}

#[test]
fn a_spert_dataset_trains_evaluates_and_tags() {
    let dir = scratch("relations");
    let data = fixture("relations");
    let model = dir.join("model");
    let o = train(
        &model,
        &["--data", s(&data)],
        // 12 sentences, 180 steps: SpERT's schedule warms up from a learning rate of 0.
        &["--epochs", "30", "--lr", "1e-4"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let training = json(&model.join("training.json"));
    assert_eq!(training["task"], "relations");
    assert_eq!(training["options"]["span_method"], "spert-mt");
    // SpERT's recipe unless told otherwise: batch 2, no early stop, the last epoch kept.
    assert_eq!(training["options"]["batch_size"], 2);
    assert_eq!(training["epoch"], 30);
    let dev = &training["dev"];
    assert!(
        dev["entities"]["micro"]["f1"].as_f64().unwrap() > 0.5,
        "the model should learn the dev entities: {dev}"
    );

    // The saved model, read back, scores the dev documents exactly as training did.
    let report = dir.join("dev.json");
    let o = trainer(
        &[
            "eval",
            "--model",
            s(&model),
            "--test",
            s(&data.join("tiny_dev.json")),
            "--json",
            s(&report),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let scored = json(&report);
    assert_eq!(&scored["test"], dev);
    // The dev sentences are not training sentences: all of them are unseen.
    assert_eq!(scored["test_unseen"], scored["test"]);
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("| relations (strict) |"), "{table}");
    // The encoder on a GPU (wgpu; a software Vulkan device under the test command): the same
    // scores, the span and pair heads on the CPU.
    let on_gpu = dir.join("dev-gpu.json");
    let o = trainer(
        &[
            "eval",
            "--model",
            s(&model),
            "--test",
            s(&data.join("tiny_dev.json")),
            "--json",
            s(&on_gpu),
            "--backend",
            "wgpu",
        ],
        None,
    );
    let required = std::env::var("MULTITAG_REQUIRE_GPU").as_deref() == Ok("1");
    if !o.status.success() && stderr(&o).contains("no GPU adapter") && !required {
        eprintln!("GPU check skipped: {}", stderr(&o));
    } else {
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stderr(&o).contains("encoder on "), "{}", stderr(&o));
        assert_eq!(json(&on_gpu)["test"], scored["test"]);
    }

    // Raw text: entities as character offsets into the line, relations indexing them.
    let line = "Laura King works for Acme Corp .";
    let o = trainer(
        &["tag", "--model", s(&model), "--task", "tagging"],
        Some(&format!("{line}\n")),
    );
    assert_refused(&o, "a relations model, not a tagging one");
    let o = trainer(
        &["tag", "--model", s(&model), "--task", "relations"],
        Some(&format!("{line}\n")),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (out["text"].as_str(), out["line"].as_u64()),
        (Some(line), Some(1))
    );
    let chars: Vec<char> = line.chars().collect();
    let entities = out["entities"].as_array().unwrap();
    assert!(!entities.is_empty(), "{out}");
    for e in entities {
        let (start, end) = (e["start"].as_u64().unwrap(), e["end"].as_u64().unwrap());
        let text: String = chars[start as usize..end as usize].iter().collect();
        assert_eq!(e["text"].as_str(), Some(text.as_str()));
    }
    for r in out["relations"].as_array().unwrap() {
        for arg in ["head", "tail"] {
            assert!((r[arg].as_u64().unwrap() as usize) < entities.len(), "{r}");
        }
    }
}

#[test]
fn bad_documents_are_named_and_skipped_and_bad_options_refused() {
    let dir = scratch("relations-bad");
    let data = fixture("relations");
    let bad = dir.join("bad_train.json");
    let mut docs = json(&data.join("tiny_train.json"));
    docs[1]["entities"][0]["end"] = 40.into();
    docs[3]["relations"][0]["tail"] = 7.into();
    std::fs::write(&bad, docs.to_string()).unwrap();
    let model = dir.join("model");
    let o = train(
        &model,
        &[
            "--train",
            s(&bad),
            "--types",
            s(&data.join("tiny_types.json")),
        ],
        &["--epochs", "1", "--span-method", "spert"],
    );
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("bad_train.json: document 1: entities[0].end"),
        "{err}"
    );
    assert!(
        err.contains("bad_train.json: document 3: relations[0].tail"),
        "{err}"
    );
    assert!(err.contains("read 10 documents, skipped 2"), "{err}");
    assert!(err.contains("no dev documents"), "{err}");
    assert_eq!(
        json(&model.join("training.json"))["options"]["span_method"],
        "spert"
    );

    let o = trainer(
        &[
            "eval",
            "--model",
            s(&model),
            "--catalog",
            s(&fixture("catalog_small.csv")),
        ],
        None,
    );
    assert_refused(&o, "no test documents");
    let o = train(
        &dir.join("m2"),
        &["--data", s(&data)],
        &["--span-method", "spert+crf"],
    );
    assert_refused(&o, "unknown addition `+crf`");
}

#[test]
fn compare_trains_each_variant_once_and_resumes() {
    let dir = scratch("relations-compare");
    let data = fixture("relations");
    let compare = || {
        run(
            "compare",
            &dir,
            &["--data", s(&data)],
            &[
                "--seeds",
                "1",
                "--variants",
                "spert,spert+iou",
                "--epochs",
                "1",
            ],
        )
    };
    let o = compare();
    assert!(o.status.success(), "{}", stderr(&o));
    let runs = std::fs::read_to_string(dir.join("runs.jsonl")).unwrap();
    assert_eq!(runs.lines().count(), 2);
    let table = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(table.contains("| spert+iou | 1 |"), "{table}");
    assert_eq!(
        std::fs::read_to_string(dir.join("compare.md"))
            .unwrap()
            .trim(),
        table.trim()
    );
    let o = compare();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("seed 1: every variant already in"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("runs.jsonl")).unwrap(),
        runs
    );
}

/// A cross-validation directory as SpERT's ADE lays it out: fold K's files end in
/// `_split_K_train.json` and `_split_K_test.json`. Here fold 0 tests on the fixture's test
/// documents and fold 1 on its dev documents.
fn folds_dir(dir: &Path) -> std::path::PathBuf {
    let data = fixture("relations");
    let folds = dir.join("folds");
    std::fs::create_dir_all(&folds).unwrap();
    for (from, to) in [
        ("tiny_types.json", "cv_types.json"),
        ("tiny_train.json", "cv_split_0_train.json"),
        ("tiny_test.json", "cv_split_0_test.json"),
        ("tiny_train.json", "cv_split_1_train.json"),
        ("tiny_dev.json", "cv_split_1_test.json"),
    ] {
        std::fs::copy(data.join(from), folds.join(to)).unwrap();
    }
    folds
}

#[test]
fn cross_validation_folds_train_evaluate_and_compare_each_fold() {
    let dir = scratch("relations-folds");
    let folds = folds_dir(&dir);

    // Without a fold the directory is ambiguous, and the error says how to choose.
    let o = train(
        &dir.join("none"),
        &["--data", s(&folds)],
        &["--epochs", "1"],
    );
    assert_refused(&o, "--fold K (2 folds here");

    let model = dir.join("fold1");
    let o = train(
        &model,
        &["--data", s(&folds), "--fold", "1"],
        &["--epochs", "1", "--span-method", "spert"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let training = json(&model.join("training.json"));
    assert_eq!(
        training["data"]["train"].as_str(),
        Some(s(&folds.join("cv_split_1_train.json")))
    );
    let report = dir.join("eval.json");
    let o = trainer(
        &[
            "eval",
            "--model",
            s(&model),
            "--data",
            s(&folds),
            "--fold",
            "1",
            "--json",
            s(&report),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        json(&report)["test_file"].as_str(),
        Some(s(&folds.join("cv_split_1_test.json")))
    );
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    // Scored on the documents it trained on (as another fold's test set would be): said.
    let o = trainer(
        &[
            "eval",
            "--model",
            s(&model),
            "--test",
            s(&folds.join("cv_split_1_train.json")),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("warning: 12 of 12 test sentences occur word for word"),
        "{}",
        stderr(&o)
    );

    let out = dir.join("compare");
    let o = run(
        "compare",
        &out,
        &["--data", s(&folds), "--folds", "all"],
        &["--seeds", "1", "--variants", "spert", "--epochs", "1"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let runs: Vec<Value> = std::fs::read_to_string(out.join("runs.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let fold_of = |r: &Value| r["fold"].as_u64();
    assert_eq!(
        runs.iter().map(fold_of).collect::<Vec<_>>(),
        [Some(0), Some(1)]
    );
    // Fold 0 scored the fixture's test documents, fold 1 its dev ones: each its own test file.
    let documents = |r: &Value| r["test"]["documents"].as_u64().unwrap();
    let expected = |name: &str| {
        json(&fixture("relations").join(name))
            .as_array()
            .unwrap()
            .len() as u64
    };
    assert_eq!(documents(&runs[0]), expected("tiny_test.json"));
    assert_eq!(documents(&runs[1]), expected("tiny_dev.json"));
    let table = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(table.contains("mean over folds 0, 1"), "{table}");
    assert!(table.contains("| spert | 1 |"), "{table}");
}

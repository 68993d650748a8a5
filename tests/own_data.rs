//! Training, evaluating, tagging and exporting on a user's own labeled titles (`--data`,
//! `--train/--dev/--test`): CoNLL and span JSONL, any label set, descriptions optional.
mod common;

use std::path::Path;

use common::{assert_refused, base_model, fixture, scratch, stderr, trainer};
use serde_json::Value;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `trainer train` from the base model on labeled data given by `data_args`.
fn train(out: &Path, data_args: &[&str], extra: &[&str]) -> std::process::Output {
    let base = base_model();
    let mut args = vec!["train", "--model", s(&base), "--out", s(out)];
    args.extend_from_slice(data_args);
    args.extend_from_slice(&["--epochs", "2", "--batch-size", "4", "--lr", "1e-3"]);
    args.extend_from_slice(extra);
    trainer(&args, None)
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn tagged_labels(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .flat_map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["entities"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["label"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn a_conll_file_trains_evaluates_tags_and_exports_with_its_own_labels() {
    let dir = scratch("own-conll");
    let data = fixture("labeled_small.conll");
    let model = dir.join("model");
    let o = train(&model, &["--data", s(&data)], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let labels = json(&model.join("labels.json"))["labels"].clone();
    let expected = [
        "O", "B-BRAND", "B-COLOUR", "B-ITEM", "I-BRAND", "I-COLOUR", "I-ITEM",
    ];
    assert_eq!(labels, serde_json::json!(expected));
    let training = json(&model.join("training.json"));
    assert_eq!(training["split"]["rule"], "id-hash-v1");

    let report = dir.join("eval.json");
    let o = trainer(
        &[
            "eval",
            "--model",
            s(&model),
            "--data",
            s(&data),
            "--json",
            s(&report),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let report = json(&report);
    let test = report["test"]["sequences"].as_u64().unwrap();
    assert!(test > 0 && test < 24, "{report}");
    assert!(report["test_unseen"]["sequences"].as_u64().unwrap() <= test);
    assert_eq!(
        report["gold"],
        Value::Null,
        "no gold set for the user's data"
    );
    assert_eq!(
        report["retrieval"]["items"], 0,
        "no descriptions, no retrieval"
    );

    // The label set survives export, and the export tags with it.
    let export = dir.join("export");
    let o = trainer(
        &[
            "export",
            "--model",
            s(&model),
            "--out",
            s(&export),
            "--data",
            s(&data),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json(&export.join("manifest.json"))["labels"], labels);
    let examples = json(&export.join("examples.json"));
    assert_eq!(examples.as_array().unwrap().len() as u64, test);
    for m in [&model, &export] {
        let o = trainer(
            &["tag", "--model", s(m)],
            Some("Nike Slim Fit Blue Jacket\nZara Red Cap\n"),
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let found = tagged_labels(&o.stdout);
        assert!(!found.is_empty());
        for label in found {
            assert!(
                ["BRAND", "COLOUR", "ITEM"].contains(&label.as_str()),
                "{label}"
            );
        }
    }
}

#[test]
fn span_jsonl_trains_the_description_loss_on_the_titles_that_have_one() {
    let dir = scratch("own-spans");
    let data = fixture("labeled_small_spans.jsonl");
    let model = dir.join("model");
    let o = train(
        &model,
        &["--data", s(&data)],
        &["--objective", "infonce", "--lambda", "0.3"],
    );
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("training titles have a description: the description loss uses those"),
        "{err}"
    );
    let metrics = std::fs::read_to_string(model.join("metrics.jsonl")).unwrap();
    let first: Value = serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
    assert!(first["aux_loss"].as_f64().unwrap() > 0.0, "{first}");
    let o = trainer(&["eval", "--model", s(&model), "--data", s(&data)], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("distinct descriptions"), "{out}");
}

#[test]
fn the_split_can_be_given_by_files_and_bad_records_are_named_and_skipped() {
    let dir = scratch("own-files");
    let text = std::fs::read_to_string(fixture("labeled_small.conll")).unwrap();
    let titles: Vec<&str> = text.split("\n\n").skip(1).collect();
    let (train_part, test_part) = titles.split_at(18);
    let train_file = dir.join("train.conll");
    let test_file = dir.join("test.conll");
    // One damaged title in training: named with its line, the others kept.
    let damaged = format!("{}\n\nRed\tB-COLOUR\nCap\n", train_part.join("\n\n"));
    let bad_line = 1 + damaged.lines().position(|l| l == "Cap").unwrap();
    std::fs::write(&train_file, damaged).unwrap();
    std::fs::write(&test_file, test_part.join("\n\n")).unwrap();
    let model = dir.join("model");
    let files = ["--train", s(&train_file), "--test", s(&test_file)];
    let o = train(&model, &files, &[]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains(&format!("{}:{bad_line}: field `tag`", train_file.display())),
        "{err}"
    );
    assert!(err.contains("read 18 labeled records, skipped 1"), "{err}");
    assert_eq!(json(&model.join("training.json"))["split"]["rule"], "files");

    // A test file alone: its titles are all unseen, since no training file is given to compare.
    let report = dir.join("eval.json");
    let args = [
        "eval",
        "--model",
        s(&model),
        "--json",
        s(&report),
        "--test",
        s(&test_file),
    ];
    let o = trainer(&args, None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json(&report)["test"]["sequences"], 6);
    assert_eq!(json(&report)["test_unseen"]["sequences"], 6);
    // Scored on another split of the same titles, some test items would be training items.
    let o = trainer(
        &[
            "eval",
            "--model",
            s(&model),
            "--data",
            s(&fixture("labeled_small.conll")),
        ],
        None,
    );
    assert_refused(&o, "field `split`");
}

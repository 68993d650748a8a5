//! The split under change: an item's split depends on its id, so a skipped row moves nobody; a
//! model remembers its split, and scoring it on another one (whose test items it trained on) is
//! refused, as is a gold set with items outside the test split.
mod common;

use std::path::Path;

use common::{fixture, scratch, stderr, train_on_fixture, trainer};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Each item's split as `trainer label` writes it.
fn splits(catalog: &Path, out: &Path) -> Vec<(String, String)> {
    let labeled = trainer(&["label", "--catalog", s(catalog), "--out", s(out)], None);
    assert!(labeled.status.success(), "{}", stderr(&labeled));
    std::fs::read_to_string(out)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["id"].as_str().unwrap().to_string(),
                v["split"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_skipped_row_moves_no_other_item() {
    let dir = scratch("split-by-id");
    let catalog = fixture("catalog_small.csv");
    let whole = splits(&catalog, &dir.join("whole.jsonl"));
    // The same catalog with its first item's id emptied: that row is skipped.
    let text = std::fs::read_to_string(&catalog).unwrap();
    let damaged = dir.join("damaged.csv");
    std::fs::write(&damaged, text.replacen("\n90000001,", "\n,", 1)).unwrap();
    let rest = splits(&damaged, &dir.join("damaged.jsonl"));
    assert_eq!(rest.len() + 1, whole.len());
    assert_eq!(rest[..], whole[1..]);
}

#[test]
fn a_model_is_scored_only_on_its_own_split() {
    let dir = scratch("split-record");
    let model = dir.join("model");
    let catalog = fixture("catalog_small.csv");
    let trained = train_on_fixture(&model, &["--epochs", "1", "--split-seed", "7"]);
    assert!(trained.status.success(), "{}", stderr(&trained));
    let training: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("training.json")).unwrap())
            .unwrap();
    assert_eq!(training["split"]["seed"], 7);

    let eval = |seed: &str| {
        trainer(
            &[
                "eval",
                "--model",
                s(&model),
                "--catalog",
                s(&catalog),
                "--split-seed",
                seed,
            ],
            None,
        )
    };
    let other = eval("8");
    assert!(!other.status.success());
    assert!(
        stderr(&other).contains("training.json") && stderr(&other).contains("`split`"),
        "{}",
        stderr(&other)
    );
    let own = eval("7");
    assert!(own.status.success(), "{}", stderr(&own));

    // A gold file naming an item that is not a test item is refused, naming its line.
    let labeled = splits(&catalog, &dir.join("labeled.jsonl"));
    let trained_on = labeled
        .iter()
        .find(|(_, split)| split == "train")
        .map(|(id, _)| id.clone())
        .unwrap();
    let gold = dir.join("gold.jsonl");
    std::fs::write(
        &gold,
        format!("{{\"id\": \"{trained_on}\", \"entities\": []}}\n"),
    )
    .unwrap();
    let refused = trainer(
        &[
            "eval",
            "--model",
            s(&model),
            "--catalog",
            s(&catalog),
            "--split-seed",
            "7",
            "--gold",
            s(&gold),
        ],
        None,
    );
    assert!(!refused.status.success());
    let err = stderr(&refused);
    assert!(
        err.contains("gold.jsonl:1") && err.contains("not test"),
        "{err}"
    );
}

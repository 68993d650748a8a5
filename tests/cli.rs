//! End-to-end tests over the `trainer` binary: bad inputs give clear errors, and a tiny training run
//! on the fixture catalog produces a model that tags any script with correct character offsets.
//! The base model comes from the project's own fetch step (`trainer fetch-model`, run by
//! scripts/test.sh); set MULTITAG_BASE_MODEL to use another BERT directory.
mod common;

use common::{base_model, fixture, scratch, stderr, train_on_fixture, trainer, Scratch};

/// The base model directory with one file replaced by `contents`, or left out when `None`. The
/// other files are hard links to the base model's (copies where linking fails), so the damaged file
/// is always written anew, never written through a link.
fn damaged_model(name: &str, file: &str, contents: Option<&[u8]>) -> Scratch {
    let dir = scratch(name);
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        if f == file {
            continue;
        }
        let (from, to) = (base_model().join(f), dir.join(f));
        if std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to).unwrap();
        }
    }
    if let Some(contents) = contents {
        std::fs::write(dir.join(file), contents).unwrap();
    }
    dir
}

#[test]
fn missing_model_directory_is_a_clear_error() {
    let out = trainer(&["tag", "--model", "/nonexistent/model"], Some("A Shirt\n"));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("/nonexistent/model"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn model_directory_without_tokenizer_names_the_file() {
    let dir = damaged_model("no-tokenizer", "tokenizer.json", None);
    let out = trainer(
        &[
            "train",
            "--model",
            dir.to_str().unwrap(),
            "--out",
            scratch("o1").to_str().unwrap(),
        ],
        None,
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("missing tokenizer.json"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn truncated_weights_are_reported_not_panicked() {
    let weights = std::fs::read(base_model().join("model.safetensors")).unwrap();
    let dir = damaged_model(
        "truncated",
        "model.safetensors",
        Some(&weights[..weights.len() / 2]),
    );
    let catalog = fixture("catalog_small.csv");
    let out = trainer(
        &[
            "train",
            "--model",
            dir.to_str().unwrap(),
            "--catalog",
            catalog.to_str().unwrap(),
            "--out",
            scratch("o2").to_str().unwrap(),
        ],
        None,
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("model.safetensors") && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn malformed_catalog_rows_are_reported_and_the_rest_labeled() {
    let out_dir = scratch("label");
    let jsonl = out_dir.join("labeled.jsonl");
    let catalog = fixture("catalog_bad_rows.csv");
    let out = trainer(
        &[
            "label",
            "--catalog",
            catalog.to_str().unwrap(),
            "--out",
            jsonl.to_str().unwrap(),
            "--gold",
            "/dev/null",
        ],
        None,
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("catalog_bad_rows.csv:") && err.contains("skipped row"),
        "{err}"
    );
    let written = std::fs::read_to_string(&jsonl).unwrap();
    assert!(written.lines().count() >= 1);
    for line in written.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(
            v["words"].as_array().unwrap().len(),
            v["tags"].as_array().unwrap().len()
        );
    }
}

/// Another retailer's catalog: its own column names, and no gender column to label from.
#[test]
fn a_catalog_with_other_column_names_is_labeled_by_the_same_rules() {
    let dir = scratch("columns");
    let text = std::fs::read_to_string(fixture("catalog_small.csv")).unwrap();
    let (_, rows) = text.split_once('\n').unwrap();
    let catalog = dir.join("shop.csv");
    let header = "sku,name,maker,Gender,Price (INR),NumImages,about,colour\n";
    std::fs::write(&catalog, format!("{header}{rows}")).unwrap();
    let jsonl = dir.join("labeled.jsonl");
    let columns = "id=sku,title=name,brand=maker,description=about,colour=colour,gender=";
    let args = [
        "label",
        "--catalog",
        catalog.to_str().unwrap(),
        "--columns",
        columns,
    ];
    let out = trainer(
        &[&args[..], &["--out", jsonl.to_str().unwrap()]].concat(),
        None,
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let coverage = String::from_utf8_lossy(&out.stdout).to_string() + &err;
    assert!(coverage.contains("| BRAND | 12 / 12"), "{coverage}");
    // The same rules give the same labels as for the catalog under its own names.
    let reference = dir.join("reference.jsonl");
    let catalog_small = fixture("catalog_small.csv");
    let out = trainer(
        &[
            "label",
            "--catalog",
            catalog_small.to_str().unwrap(),
            "--out",
            reference.to_str().unwrap(),
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let written = std::fs::read_to_string(&jsonl).unwrap();
    assert_eq!(written.lines().count(), 12);
    assert_eq!(written, std::fs::read_to_string(&reference).unwrap());
    // Without the mapping, the bundled catalog's names are missing.
    let out = trainer(
        &[&args[..3], &["--out", jsonl.to_str().unwrap()]].concat(),
        None,
    );
    assert!(
        stderr(&out).contains("missing required column(s): ProductID"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn catalog_without_a_required_column_fails_naming_it() {
    let catalog = fixture("catalog_missing_column.csv");
    let out = trainer(
        &[
            "label",
            "--catalog",
            catalog.to_str().unwrap(),
            "--out",
            scratch("l2").join("x.jsonl").to_str().unwrap(),
        ],
        None,
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("catalog_missing_column.csv"),
        "{}",
        stderr(&out)
    );
}

/// Trains for one epoch on the fixture catalog, then tags titles in several scripts, a 5,000
/// character title and an empty line, checking that every entity's offsets index its text.
#[test]
fn tiny_training_run_then_tagging_any_script() {
    let out_dir = scratch("train");
    let model = out_dir.join("model");
    let out = train_on_fixture(
        &model,
        &[
            "--epochs",
            "2",
            "--objective",
            "triplet",
            "--lambda",
            "1",
            "--description-tokens",
            "32",
            "--lr",
            "1e-4",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    for f in [
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "labels.json",
        "metrics.jsonl",
        "checkpoint/state.json",
    ] {
        assert!(model.join(f).is_file(), "missing {f}");
    }
    let metrics = std::fs::read_to_string(model.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 2);

    let long = "Shirt ".repeat(834);
    let input = format!("Roadster Men Navy Blue Casual Shirt 👕\n\nकुर्ता Women Red Kurta 🌸 Set\n{long}\n红色 T-shirt\n");
    let out = trainer(&["tag", "--model", model.to_str().unwrap()], Some(&input));
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines.len(),
        4,
        "the blank line is skipped, every other title tagged"
    );
    assert_eq!(lines[2]["truncated"], true);
    for line in &lines {
        let title: Vec<char> = line["title"].as_str().unwrap().chars().collect();
        for e in line["entities"].as_array().unwrap() {
            let (s, t) = (
                e["start"].as_u64().unwrap() as usize,
                e["end"].as_u64().unwrap() as usize,
            );
            let text: String = title[s..t].iter().collect();
            assert_eq!(text, e["text"].as_str().unwrap());
            let score = e["score"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&score));
        }
    }

    // The model records its method, and inference refuses one this build does not have.
    let training: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("training.json")).unwrap())
            .unwrap();
    assert_eq!(training["task"], "tagging");
    let other = out_dir.join("other-task");
    std::fs::create_dir_all(&other).unwrap();
    for f in [
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "labels.json",
    ] {
        std::fs::copy(model.join(f), other.join(f)).unwrap();
    }
    let mut newer = training.clone();
    newer["task"] = "coreference".into();
    std::fs::write(other.join("training.json"), newer.to_string()).unwrap();
    let out = trainer(
        &["tag", "--model", other.to_str().unwrap()],
        Some("Navy Shirt\n"),
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("training.json") && err.contains("`task`") && err.contains("`coreference`"),
        "{err}"
    );

    // --resume continues from the checkpoint: a third epoch adds one metrics line.
    let out = train_on_fixture(
        &model,
        &[
            "--epochs",
            "3",
            "--patience",
            "5",
            "--objective",
            "triplet",
            "--lambda",
            "1",
            "--description-tokens",
            "32",
            "--lr",
            "1e-4",
            "--resume",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("resuming after epoch 2"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(model.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .count(),
        3
    );
}

/// Same seed, same data, same machine: byte-identical weights (dropout, shuffling, negatives and
/// head initialisation all come from seeded generators).
#[test]
fn training_is_deterministic_on_cpu_for_a_seed() {
    let train = |name: &str| {
        let dir = scratch(name);
        let model = dir.join("model");
        let out = train_on_fixture(
            &model,
            &[
                "--epochs",
                "1",
                "--seed",
                "7",
                "--objective",
                "infonce",
                "--lambda",
                "0.5",
                "--description-tokens",
                "24",
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        std::fs::read(model.join("model.safetensors")).unwrap()
    };
    let first = train("det-a");
    assert!(
        first == train("det-b"),
        "two runs with seed 7 gave different weights"
    );
}

/// A catalog with an unbalanced quote (which used to swallow the next rows), a stray quote opening
/// a title (which used to glue brand, gender and price into it, unreported), a line that is not
/// UTF-8 (which used to reject the file) and a multi-line description that loses its closing
/// quote: `trainer label` keeps every good row, names every damaged line on stderr, prints the
/// total and lists the same lines in the skipped-row file beside its output.
#[test]
fn damaged_catalog_rows_are_named_and_every_good_row_kept() {
    let dir = scratch("damaged-label");
    let catalog = dir.join("damaged.csv");
    let mut bytes = b"ProductID,ProductName,ProductBrand,Gender,Price (INR),NumImages,Description,PrimaryColor\n".to_vec();
    for line in [
        &b"90000101,Urban Loom Men Navy Blue Casual Shirt,Urban Loom,Men,899,5,\"Navy blue shirt, cotton\", Navy Blue\n"[..],
        b"90000102,Trekko Unisex Black Trolley Bag,Trekko,Unisex,5200,7,\"Black trolley bag, four wheels,Black\n",
        b"90000103,Stridex Men Grey Running Shoes,Stridex,Men,2999,6,Grey running shoes,Grey\n",
        b"90000104,Pixie Dust Girls Pink T-shirt,Pixie Dust,Girls,499,4,Pink T-shirt,Pink\n",
        b"90000105,Goldfinch Women Gold-Toned Drop Earrings,Goldfinch,Women,349,2,\"Drop earrings\n",
        b"gold-toned, with a hook\",Gold\n",
        b"90000106,\"Roadster Men Olive Jacket,Roadster,Men,2999,6,\"Olive jacket, zip, pockets, lined, light, warm\",Olive\n",
        b"90000107,Kesar Looms Women \xff Maroon Kurta,Kesar Looms,Women,1299,5,Maroon kurta,Maroon\n",
        "90000108,Biba Women Red कुर्ता 🌸,Biba,Women,1599,5,Red kurta,Red\n".as_bytes(),
        b"90000109,Mast Men White Sneakers,Mast,Men,1999,5,\"White sneakers\n",
        b"lace-ups\n",
        b"cushioned sole,White\n",
        b"90000110,Levis Men Blue Slim Jeans,Levis,Men,2599,5,\"Blue jeans, slim fit\",Blue\n",
        b"90000111,Fastrack Unisex Black Watch,Fastrack,Unisex,1495,4,Black watch,Black\n",
    ] {
        bytes.extend_from_slice(line);
    }
    std::fs::write(&catalog, &bytes).unwrap();
    let jsonl = dir.join("labeled.jsonl");
    let out = trainer(
        &[
            "label",
            "--catalog",
            catalog.to_str().unwrap(),
            "--out",
            jsonl.to_str().unwrap(),
            "--gold",
            "/dev/null",
        ],
        None,
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let ids: Vec<String> = std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].to_string())
        .collect();
    let good = [101, 103, 104, 105, 108, 110, 111];
    assert_eq!(
        ids,
        good.map(|i| format!("\"90000{i}\"")),
        "every good row is labeled, no damaged one: {err}"
    );
    let damaged = [3, 8, 9, 11, 12, 13];
    for line in damaged {
        assert!(
            err.contains(&format!("damaged.csv:{line}: field")),
            "line {line}: {err}"
        );
    }
    assert!(
        err.contains("read 7 items, skipped 6 rows or damaged lines"),
        "{err}"
    );
    assert!(err.contains("labeled.skipped.jsonl"), "{err}");
    let listed: Vec<u64> = std::fs::read_to_string(dir.join("labeled.skipped.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["line"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(listed, damaged.map(|l| l as u64));
    assert!(!err.contains("panicked"), "{err}");
}

/// More skipped rows than are printed: the commands that print only the first ten always print the
/// total, and say how to list them all.
#[test]
fn skipped_row_total_is_printed_beyond_the_first_ten() {
    let dir = scratch("damaged-total");
    let catalog = dir.join("damaged_total.csv");
    let mut text =
        "ProductID,ProductName,ProductBrand,Gender,Price (INR),NumImages,Description,PrimaryColor\n"
            .to_string();
    for i in 0..12 {
        text.push_str(&format!("{i},Acme Men Shirt {i},Acme,Men,\"99\n"));
    }
    std::fs::write(&catalog, text).unwrap();
    let base = base_model();
    let out = trainer(
        &[
            "train",
            "--model",
            base.to_str().unwrap(),
            "--catalog",
            catalog.to_str().unwrap(),
            "--out",
            dir.join("model").to_str().unwrap(),
        ],
        None,
    );
    let err = stderr(&out);
    assert!(!out.status.success(), "no usable rows: {err}");
    assert_eq!(err.matches("skipped row: ").count(), 10, "{err}");
    assert!(
        err.contains("read 0 items, skipped 12 rows or damaged lines (the first 10 above)")
            && err.contains("--skipped FILE"),
        "{err}"
    );
    assert!(err.contains("no usable rows"), "{err}");
}

/// The pretrained baseline is one command: `eval` on a base encoder scores its embeddings only.
#[test]
fn eval_of_a_base_encoder_is_retrieval_only() {
    let dir = scratch("eval-base");
    let report = dir.join("eval.json");
    let base = base_model();
    let catalog = fixture("catalog_small.csv");
    let out = trainer(
        &[
            "eval",
            "--model",
            base.to_str().unwrap(),
            "--catalog",
            catalog.to_str().unwrap(),
            "--json",
            report.to_str().unwrap(),
        ],
        None,
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("a base encoder (no tags): retrieval only"),
        "{err}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(report["test"], serde_json::Value::Null);
    let retrieval = &report["retrieval"];
    assert!(retrieval["items"].as_u64().unwrap() > 0, "{report}");
    let at_1 = retrieval["accuracy_at_1"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&at_1), "{report}");
}

//! End-to-end tests of `trainer export` (the browser's model directory): a tiny model trained on the
//! fixture catalog is exported (f32 and q8_0), evaluated and used for tagging from the export, and
//! bad inputs are refused with messages naming the file. The base model comes from
//! `trainer fetch-model` (run by scripts/test.sh); set MULTITAG_BASE_MODEL to use another one.
mod common;

use std::path::Path;
use std::process::Output;

use common::{base_model, fixture, scratch, stderr, trainer};

use serde_json::Value;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// The split seed of these tests: it puts all five items of tests/fixtures/gold_small.jsonl in
/// the fixture catalog's test split (6 test, 1 dev, 5 train items), as a gold set must be.
const SPLIT_SEED: &str = "189";

fn export(model: &Path, quant: &str, out: &Path, catalog: &Path) -> Output {
    trainer(
        &[
            "export",
            "--split-seed",
            SPLIT_SEED,
            "--model",
            s(model),
            "--quant",
            quant,
            "--out",
            s(out),
            "--catalog",
            s(catalog),
        ],
        None,
    )
}

fn eval_json(model: &Path, json: &Path) -> Value {
    let catalog = fixture("catalog_small.csv");
    let gold = fixture("gold_small.jsonl");
    let out = trainer(
        &[
            "eval",
            "--split-seed",
            SPLIT_SEED,
            "--model",
            s(model),
            "--catalog",
            s(&catalog),
            "--gold",
            s(&gold),
            "--json",
            s(json),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "eval {}: {}",
        model.display(),
        stderr(&out)
    );
    read_json(json)
}

/// One small training run, then: export f32 and q8_0, check the directory layout and manifest,
/// evaluate and tag from the exports, re-export over an existing directory, export with an
/// unreadable catalog (no examples, a warning), and a corrupted model.gguf is reported by name.
#[test]
fn export_of_a_tiny_trained_model_then_eval_and_tag() {
    let dir = scratch("trained");
    let model = dir.join("model");
    let catalog = fixture("catalog_small.csv");
    let base = base_model();
    let out = trainer(
        &[
            "train",
            "--model",
            s(&base),
            "--catalog",
            s(&catalog),
            "--out",
            s(&model),
            "--batch-size",
            "4",
            "--epochs",
            "1",
            "--lr",
            "1e-4",
            "--split-seed",
            SPLIT_SEED,
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));

    let exports = dir.join("exports");
    let f32_dir = exports.join("f32");
    let q8_dir = exports.join("q8");
    for (quant, out_dir) in [("f32", &f32_dir), ("q8_0", &q8_dir)] {
        let out = export(&model, quant, out_dir, &catalog);
        assert!(out.status.success(), "export {quant}: {}", stderr(&out));
        for f in [
            "model.gguf",
            "tokenizer.json",
            "examples.json",
            "manifest.json",
        ] {
            assert!(out_dir.join(f).is_file(), "{quant}: missing {f}");
        }
        let manifest = read_json(&out_dir.join("manifest.json"));
        assert_eq!(manifest["quant"], quant);
        assert_eq!(manifest["task"], "tagging");
        assert_eq!(manifest["labels"][0], "O");
        for f in manifest["files"].as_array().unwrap() {
            let name = f["name"].as_str().unwrap();
            let len = std::fs::metadata(out_dir.join(name)).unwrap().len();
            assert_eq!(f["bytes"].as_u64().unwrap(), len, "{quant}: size of {name}");
        }
        let tensors = manifest["tensors"].as_array().unwrap();
        let type_of = |name: &str| {
            tensors
                .iter()
                .find(|t| t["name"] == name)
                .unwrap_or_else(|| panic!("{quant}: no tensor {name}"))["type"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let matrix = if quant == "f32" { "f32" } else { "q8_0" };
        assert_eq!(
            type_of("bert.encoder.layer.0.attention.self.query.weight"),
            matrix
        );
        assert_eq!(type_of("bert.embeddings.word_embeddings.weight"), matrix);
        assert_eq!(type_of("classifier.weight"), matrix);
        assert_eq!(type_of("classifier.bias"), "f32");
        assert_eq!(
            type_of("bert.encoder.layer.0.output.LayerNorm.weight"),
            "f32"
        );
        let examples = read_json(&out_dir.join("examples.json"));
        let examples = examples.as_array().unwrap();
        assert!(!examples.is_empty(), "{quant}: no examples");
        for e in examples {
            assert!(e["id"].is_string() && e["title"].is_string() && e["description"].is_string());
        }
    }
    let q8_size = std::fs::metadata(q8_dir.join("model.gguf")).unwrap().len();
    let f32_size = std::fs::metadata(f32_dir.join("model.gguf")).unwrap().len();
    assert!(
        q8_size * 3 < f32_size,
        "q8_0 {q8_size} bytes vs f32 {f32_size}"
    );

    // Evaluation: the f32 export scores exactly like the trained directory; q8_0 runs.
    let float = eval_json(&model, &dir.join("float.json"));
    let exported = eval_json(&f32_dir, &dir.join("f32.json"));
    for set in ["test", "gold"] {
        assert_eq!(float[set]["f1"], exported[set]["f1"], "{set} F1");
        assert_eq!(float[set]["exact_match"], exported[set]["exact_match"]);
    }
    let q8 = eval_json(&q8_dir, &dir.join("q8.json"));
    let f1 = q8["test"]["f1"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&f1), "{q8}");

    // Tagging from the export, with the weights dequantized at load (the default) and kept
    // quantized: the same entities.
    let tag_with = |matmul: &str| {
        let out = trainer(
            &["tag", "--model", s(&q8_dir), "--matmul", matmul],
            Some("Roadster Men Navy Blue Casual Shirt\nकुर्ता Women Red Kurta Set\n"),
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let lines: Vec<Value> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .collect();
        lines
            .iter()
            .map(|l| {
                l["entities"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| (e["label"].clone(), e["start"].clone(), e["end"].clone()))
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(tag_with("f32"), tag_with("quantized"));
    let out = trainer(
        &["tag", "--model", s(&q8_dir)],
        Some("Roadster Men Navy Blue Casual Shirt\nकुर्ता Women Red Kurta Set\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);

    // Exporting again replaces the directory (no staging directories left behind); an unreadable
    // catalog gives a warning and no examples.
    let out = export(
        &model,
        "q8_0",
        &q8_dir,
        Path::new("/nonexistent/catalog.csv"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("warning") && stderr(&out).contains("/nonexistent/catalog.csv"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        read_json(&q8_dir.join("examples.json")),
        Value::Array(vec![])
    );
    let leftovers: Vec<String> = std::fs::read_dir(&exports)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut sorted = leftovers.clone();
    sorted.sort();
    assert_eq!(sorted, ["f32", "q8"], "{leftovers:?}");

    // An export cannot be exported or trained from again.
    let out = export(&q8_dir, "q4k", &exports.join("again"), &catalog);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("model.gguf"), "{}", stderr(&out));

    // A damaged model.gguf is reported by name, not panicked on.
    let gguf = q8_dir.join("model.gguf");
    let bytes = std::fs::read(&gguf).unwrap();
    std::fs::write(&gguf, &bytes[..bytes.len() / 3]).unwrap();
    let out = trainer(&["tag", "--model", s(&q8_dir)], Some("A Shirt\n"));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains(s(&gguf)) && !err.contains("panicked"), "{err}");
}

#[test]
fn export_refuses_a_missing_or_incomplete_model_directory() {
    let dir = scratch("refuse");
    let catalog = fixture("catalog_small.csv");
    let out_dir = dir.join("out");

    let out = export(Path::new("/nonexistent/model"), "q8_0", &out_dir, &catalog);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("/nonexistent/model"),
        "{}",
        stderr(&out)
    );
    assert!(
        !out_dir.exists(),
        "a failed export left {}",
        out_dir.display()
    );

    // A directory without weights names the missing file.
    let partial = dir.join("partial");
    std::fs::create_dir_all(&partial).unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(base_model().join(f), partial.join(f)).unwrap();
    }
    let out = export(&partial, "q8_0", &out_dir, &catalog);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("missing model.safetensors"),
        "{}",
        stderr(&out)
    );

    // The base model is not a trained tagger (no labels.json).
    let out = export(&base_model(), "q8_0", &out_dir, &catalog);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("labels.json"), "{}", stderr(&out));

    // An unknown type is refused by the argument parser.
    let out = export(&base_model(), "q2", &out_dir, &catalog);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("q2"), "{}", stderr(&out));
    assert!(!out_dir.exists());
}

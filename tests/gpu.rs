//! `--backend wgpu` (the encoder on a GPU through wgpu; here a software Vulkan device): a small
//! tagger trained on the fixture catalog, with a tagging layer of its own (so the sentence
//! embeddings read a depth below the top), evaluates to the same scores and tags the same
//! entities on the GPU as on the CPU, from its float weights and from a q8_0 export. Without an adapter the test says so and passes, unless
//! MULTITAG_REQUIRE_GPU=1 (set by scripts/test.sh after installing Mesa's Vulkan driver).
mod common;

use std::path::Path;

use common::{fixture, scratch, stderr, train_on_fixture, trainer};
use serde_json::Value;

/// Puts the five gold items of tests/fixtures/gold_small.jsonl in the fixture's test split.
const SPLIT_SEED: &str = "189";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn required() -> bool {
    std::env::var("MULTITAG_REQUIRE_GPU").as_deref() == Ok("1")
}

/// `trainer eval --json` of `model` on `backend`; `None` when the GPU has no adapter and none
/// is required.
fn eval(model: &Path, backend: &str, json: &Path) -> Option<Value> {
    let out = trainer(
        &[
            "eval",
            "--split-seed",
            SPLIT_SEED,
            "--model",
            s(model),
            "--catalog",
            s(&fixture("catalog_small.csv")),
            "--gold",
            s(&fixture("gold_small.jsonl")),
            "--backend",
            backend,
            "--json",
            s(json),
        ],
        None,
    );
    if !out.status.success() && stderr(&out).contains("no GPU adapter") && !required() {
        eprintln!("skipped: {}", stderr(&out));
        return None;
    }
    assert!(out.status.success(), "eval on {backend}: {}", stderr(&out));
    Some(serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap())
}

/// `trainer tag` of a few titles on `backend`: one JSON value per title.
fn tag(model: &Path, backend: &str) -> Vec<Value> {
    let titles = "Roadster Men Navy Blue Slim Fit Casual Shirt\n\
                  Nike Women Black Running Shoes\n\
                  W Women Red Printed Kurta with Palazzos\n";
    let out = trainer(
        &["tag", "--model", s(model), "--backend", backend],
        Some(titles),
    );
    assert!(out.status.success(), "tag on {backend}: {}", stderr(&out));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The entities of a tagged title without their scores, and the scores.
fn entities(tagged: &Value) -> (Vec<Value>, Vec<f64>) {
    let list = tagged["entities"].as_array().unwrap();
    let without: Vec<Value> = list
        .iter()
        .map(|e| {
            let mut e = e.clone();
            e.as_object_mut().unwrap().remove("score");
            e
        })
        .collect();
    let scores = list.iter().map(|e| e["score"].as_f64().unwrap()).collect();
    (without, scores)
}

#[test]
fn the_gpu_backend_scores_and_tags_as_the_cpu_does() {
    let dir = scratch("gpu");
    let model = dir.join("model");
    let out = train_on_fixture(
        &model,
        &[
            "--epochs",
            "2",
            "--lr",
            "1e-4",
            "--tagging-layers",
            "1",
            "--split-seed",
            SPLIT_SEED,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let q8 = dir.join("q8");
    let out = trainer(
        &[
            "export",
            "--model",
            s(&model),
            "--quant",
            "q8_0",
            "--out",
            s(&q8),
            "--split-seed",
            SPLIT_SEED,
            "--catalog",
            s(&fixture("catalog_small.csv")),
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    for m in [&model, &q8] {
        let Some(on_gpu) = eval(m, "wgpu", &dir.join("gpu.json")) else {
            return;
        };
        let on_cpu = eval(m, "cpu", &dir.join("cpu.json")).unwrap();
        for set in ["test", "gold"] {
            assert_eq!(on_gpu[set], on_cpu[set], "{set} scores of {}", m.display());
        }
        let gpu_r1 = on_gpu["retrieval"]["accuracy_at_1"].as_f64().unwrap();
        let cpu_r1 = on_cpu["retrieval"]["accuracy_at_1"].as_f64().unwrap();
        assert!((gpu_r1 - cpu_r1).abs() < 1e-9, "{gpu_r1} vs {cpu_r1}");
        for (g, c) in tag(m, "wgpu").iter().zip(tag(m, "cpu")) {
            let ((g_entities, g_scores), (c_entities, c_scores)) = (entities(g), entities(&c));
            assert_eq!(g_entities, c_entities, "{}", m.display());
            for (a, b) in g_scores.iter().zip(&c_scores) {
                assert!((a - b).abs() < 1e-3, "score {a} vs {b}");
            }
        }
    }
}

//! `trainer embed` and `trainer match` on the base encoder, which needs no training: vectors are
//! unit length and the same for the same text, the .npy and JSONL outputs agree, each query
//! finds itself among candidates equal to the queries, vectors written by `embed` give the same
//! matches as embedding on the fly, and bad requests are clear errors. A trained model (one short
//! run on the fixture catalog) embeds through its predictor, at its title length by default. The base model comes from
//! `trainer fetch-model` (scripts/test.sh); set MULTITAG_BASE_MODEL to use another BERT directory.
mod common;

use std::path::Path;

use common::{base_model, scratch, stderr, train_on_fixture, trainer};
use serde_json::Value;

/// Distinct texts, a blank line among them (no vector, and the line numbers go on past it).
const TEXTS: &str = "Navy Blue Cotton Slim Fit Shirt\nBrown Leather Wallet for Men\n\n\
                     Stainless Steel Water Bottle 1 Litre\nFloral Print Maxi Dress\n\
                     Wireless Bluetooth Earphones with Mic\n";
const LINES: [u64; 5] = [1, 2, 4, 5, 6];

fn base() -> String {
    base_model().to_str().unwrap().to_string()
}

/// Runs the trainer, asserting success; its stdout.
fn run_ok(args: &[&str]) -> String {
    let out = trainer(args, None);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

fn jsonl(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn floats(value: &Value) -> Vec<f32> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect()
}

/// The rows of a float32 .npy file of `hidden` columns (the header's shape is checked by its text).
fn read_npy(path: &Path, hidden: usize) -> Vec<Vec<f32>> {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    assert!(header.contains("'<f4'"), "{header}");
    let data: Vec<f32> = bytes[10 + header_len..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let rows = data.len() / hidden;
    assert!(
        header.contains(&format!("({rows},{hidden},)"))
            || header.contains(&format!("({rows}, {hidden})")),
        "{header}"
    );
    data.chunks_exact(hidden).map(<[f32]>::to_vec).collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn embed_gives_unit_vectors_and_its_npy_and_jsonl_agree() {
    let dir = scratch("embed");
    let input = dir.join("texts.txt");
    // The first text again on the last line: the same vector in another batch.
    std::fs::write(&input, format!("{TEXTS}Navy Blue Cotton Slim Fit Shirt\n")).unwrap();
    let input = input.to_str().unwrap();
    let base = base();
    let records = jsonl(&run_ok(&["embed", "--model", &base, input, "--batch", "4"]));
    let lines: Vec<u64> = records
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [1, 2, 4, 5, 6, 7]);
    let vectors: Vec<Vec<f32>> = records.iter().map(|r| floats(&r["vector"])).collect();
    let hidden = vectors[0].len();
    assert_eq!(hidden, 384, "all-MiniLM-L6-v2's hidden size");
    for v in &vectors {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    }
    assert!(max_diff(&vectors[0], &vectors[5]) < 1e-5, "the same text");
    assert!(max_diff(&vectors[0], &vectors[1]) > 1e-2, "different texts");

    let npy = dir.join("vectors.npy");
    run_ok(&[
        "embed",
        "--model",
        &base,
        input,
        "--batch",
        "4",
        "--out",
        npy.to_str().unwrap(),
    ]);
    let rows = read_npy(&npy, hidden);
    assert_eq!(rows.len(), vectors.len());
    for (row, vector) in rows.iter().zip(&vectors) {
        assert!(max_diff(row, vector) < 1e-6);
    }
    let file = dir.join("vectors.jsonl");
    run_ok(&[
        "embed",
        "--model",
        &base,
        input,
        "--batch",
        "4",
        "--out",
        file.to_str().unwrap(),
    ]);
    let from_file = jsonl(&std::fs::read_to_string(&file).unwrap());
    assert_eq!(
        from_file, records,
        "--out FILE.jsonl writes what stdout gets"
    );
}

#[test]
fn match_finds_each_query_itself_and_reused_vectors_match_the_same() {
    let dir = scratch("match");
    let texts = dir.join("texts.txt");
    std::fs::write(&texts, TEXTS).unwrap();
    let texts = texts.to_str().unwrap();
    let base = base();
    let on_the_fly = jsonl(&run_ok(&[
        "match",
        "--model",
        &base,
        "--queries",
        texts,
        "--candidates",
        texts,
        "--top-k",
        "3",
    ]));
    assert_eq!(on_the_fly.len(), LINES.len());
    for (record, line) in on_the_fly.iter().zip(LINES) {
        assert_eq!(record["query_line"], line);
        let matches = record["matches"].as_array().unwrap();
        assert_eq!(matches.len(), 3);
        assert_eq!(matches[0]["line"], line, "{record}");
        assert_eq!(matches[0]["text"], record["query"]);
        let scores: Vec<f64> = matches
            .iter()
            .map(|m| m["score"].as_f64().unwrap())
            .collect();
        assert!((scores[0] - 1.0).abs() < 1e-4, "{scores:?}");
        assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    }

    let npy = dir.join("candidates.npy");
    run_ok(&[
        "embed",
        "--model",
        &base,
        texts,
        "--out",
        npy.to_str().unwrap(),
    ]);
    let reused = jsonl(&run_ok(&[
        "match",
        "--model",
        &base,
        "--queries",
        texts,
        "--candidates",
        texts,
        "--top-k",
        "3",
        "--candidate-vectors",
        npy.to_str().unwrap(),
    ]));
    assert_eq!(reused.len(), on_the_fly.len());
    for (a, b) in reused.iter().zip(&on_the_fly) {
        let (a, b) = (
            a["matches"].as_array().unwrap(),
            b["matches"].as_array().unwrap(),
        );
        let lines = |m: &[Value]| m.iter().map(|m| m["line"].clone()).collect::<Vec<_>>();
        assert_eq!(lines(a), lines(b));
        for (x, y) in a.iter().zip(b) {
            let (x, y) = (x["score"].as_f64().unwrap(), y["score"].as_f64().unwrap());
            assert!((x - y).abs() < 1e-5, "{x} vs {y}");
        }
    }
}

#[test]
fn bad_requests_are_clear_errors() {
    let dir = scratch("match-errors");
    let texts = dir.join("texts.txt");
    std::fs::write(&texts, TEXTS).unwrap();
    let texts = texts.to_str().unwrap();
    let base = base();
    let fails = |args: &[&str], expected: &[&str]| {
        let out = trainer(args, None);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = stderr(&out);
        for e in expected {
            assert!(err.contains(e), "{args:?}: expected `{e}` in: {err}");
        }
    };
    let matching = [
        "match",
        "--model",
        &base,
        "--queries",
        texts,
        "--candidates",
        texts,
    ];
    fails(&[&matching[..], &["--top-k", "0"]].concat(), &["--top-k 0"]);

    // Vectors of the first two texts only: the wrong shape for five candidates.
    let two = dir.join("two.txt");
    std::fs::write(&two, TEXTS.lines().take(2).collect::<Vec<_>>().join("\n")).unwrap();
    let npy = dir.join("two.npy");
    run_ok(&[
        "embed",
        "--model",
        &base,
        two.to_str().unwrap(),
        "--out",
        npy.to_str().unwrap(),
    ]);
    fails(
        &[
            &matching[..],
            &["--candidate-vectors", npy.to_str().unwrap()],
        ]
        .concat(),
        &[
            "two.npy: holds a 2 x 384 matrix",
            "the 5 candidates of",
            "5 x 384",
        ],
    );

    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "\n  \n").unwrap();
    let empty = empty.to_str().unwrap();
    fails(
        &["embed", "--model", &base, empty],
        &["empty.txt: no texts"],
    );
    fails(
        &[
            "match",
            "--model",
            &base,
            "--queries",
            texts,
            "--candidates",
            empty,
        ],
        &["empty.txt: no texts"],
    );
    fails(
        &["embed", "--model", &base, texts, "--max-tokens", "100000"],
        &["--max-tokens 100000", "512 positions"],
    );
}

#[test]
fn a_trained_model_embeds_with_its_own_encoder_at_its_title_length() {
    let dir = scratch("trained");
    let model = dir.join("model");
    let out = train_on_fixture(&model, &["--epochs", "1", "--objective", "triplet"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let texts = dir.join("texts.txt");
    std::fs::write(&texts, TEXTS).unwrap();
    let (model, texts) = (model.to_str().unwrap(), texts.to_str().unwrap());
    let out = trainer(&["embed", "--model", model, texts], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cut at 48 sub-words"),
        "{}",
        stderr(&out)
    );
    let trained: Vec<Vec<f32>> = jsonl(&String::from_utf8(out.stdout).unwrap())
        .iter()
        .map(|r| floats(&r["vector"]))
        .collect();
    assert_eq!(trained.len(), LINES.len());
    let base = base();
    let plain: Vec<Vec<f32>> = jsonl(&run_ok(&[
        "embed",
        "--model",
        &base,
        texts,
        "--max-tokens",
        "48",
    ]))
    .iter()
    .map(|r| floats(&r["vector"]))
    .collect();
    for (t, p) in trained.iter().zip(&plain) {
        let norm = t.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
        assert!(max_diff(t, p) > 1e-4, "training moved the encoder");
    }
}

/// A tagger with a layer of its own (`--tagging-layers 1`) is stored as a deeper BERT whose
/// sentence embedding stays at the base encoder's depth: trained at learning rate 0 (the shared
/// layers as the base left them), it embeds exactly as the base encoder does, and so does its
/// f32 export, while its tags read the extra layer.
#[test]
fn a_tagger_with_its_own_layer_embeds_at_the_base_encoder_depth() {
    let dir = scratch("tagging-layers");
    let model = dir.join("model");
    let out = train_on_fixture(
        &model,
        &["--epochs", "1", "--lr", "0", "--tagging-layers", "1"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let read =
        |p: &Path| -> Value { serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap() };
    let base_layers = read(&base_model().join("config.json"))["num_hidden_layers"]
        .as_u64()
        .unwrap();
    let config = read(&model.join("config.json"));
    assert_eq!(config["num_hidden_layers"], base_layers + 1, "{config}");
    assert_eq!(config["multitag_embedding_layers"], base_layers, "{config}");

    let export = dir.join("export");
    let catalog = common::fixture("catalog_small.csv");
    run_ok(&[
        "export",
        "--model",
        model.to_str().unwrap(),
        "--quant",
        "f32",
        "--out",
        export.to_str().unwrap(),
        "--catalog",
        catalog.to_str().unwrap(),
    ]);
    let texts = dir.join("texts.txt");
    std::fs::write(&texts, TEXTS).unwrap();
    let texts = texts.to_str().unwrap();
    let vectors = |m: &str| -> Vec<Vec<f32>> {
        jsonl(&run_ok(&[
            "embed",
            "--model",
            m,
            texts,
            "--max-tokens",
            "48",
        ]))
        .iter()
        .map(|r| floats(&r["vector"]))
        .collect()
    };
    let plain = vectors(&base());
    for m in [&model, &export] {
        let own = vectors(m.to_str().unwrap());
        assert_eq!(own.len(), plain.len());
        for (o, p) in own.iter().zip(&plain) {
            assert!(max_diff(o, p) < 1e-5, "{}: {}", m.display(), max_diff(o, p));
        }
    }
    let tagged = trainer(
        &["tag", "--model", export.to_str().unwrap()],
        Some("Nike Slim Fit Blue Jacket\n"),
    );
    assert!(tagged.status.success(), "{}", stderr(&tagged));
}

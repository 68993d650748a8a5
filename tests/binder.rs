//! BINDER end to end (`--task binder`): a tiny IOB2 dataset of invented sentences
//! (tests/fixtures/binder) with its type descriptions trains from the base model, the saved model
//! scores the dev sentences exactly as training did, and tagging takes types described at tag
//! time.
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

fn train(out: &Path, types: Option<&Path>, extra: &[&str]) -> std::process::Output {
    let (base, data) = (base_model(), fixture("binder"));
    let (train, dev) = (
        data.join("invented_train.conll"),
        data.join("invented_dev.conll"),
    );
    let mut args = vec![
        "train",
        "--task",
        "binder",
        "--model",
        s(&base),
        "--train",
        s(&train),
        "--dev",
        s(&dev),
        "--out",
        s(out),
    ];
    if let Some(types) = types {
        args.extend(["--types", s(types)]);
    }
    args.extend_from_slice(extra);
    trainer(&args, None)
}

#[test]
fn a_binder_model_trains_evaluates_and_tags_described_types() {
    let dir = scratch("binder");
    let data = fixture("binder");
    let model = dir.join("model");
    // 12 sentences with entities: 2 steps an epoch.
    let o = train(
        &model,
        Some(&data.join("types.json")),
        &["--epochs", "15", "--lr", "1e-4"],
    );
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("12 sentences with entities (1 without, left out)"),
        "{err}"
    );
    let training = json(&model.join("training.json"));
    assert_eq!(training["task"], "binder");
    // BINDER's recipe unless told otherwise: batch 8, no warm-up, no weight decay.
    let options = &training["options"];
    assert_eq!(
        (options["batch_size"].as_u64(), options["warmup"].as_f64()),
        (Some(8), Some(0.0))
    );
    assert_eq!(options["weight_decay"].as_f64(), Some(0.0));
    let dev = &training["dev"];
    assert!(
        dev["f1"].as_f64().unwrap() > 0.5,
        "the model should find the dev entities: {dev}"
    );

    // The saved model, read back, scores the dev sentences exactly as training did.
    let report = dir.join("dev.json");
    let o = trainer(
        &[
            "eval",
            "--model",
            s(&model),
            "--test",
            s(&data.join("invented_dev.conll")),
            "--json",
            s(&report),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(&json(&report)["test"], dev);

    // Tagging raw text with a type described at tag time, after the trained ones.
    let extra = dir.join("more_types.json");
    std::fs::write(
        &extra,
        r#"[{"name": "Chemical", "description": "chemical entities are drugs and other chemical substances."},
            {"name": "Organ", "description": "an organ entity is a part of the body such as the liver, heart or kidney."}]"#,
    )
    .unwrap();
    let line = "Aspirin relieved the migraine and the liver recovered .";
    let o = trainer(
        &["tag", "--model", s(&model), "--types", s(&extra)],
        Some(&format!("{line}\n")),
    );
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("1 type(s) described at tag time, after the 2 trained"),
        "{err}"
    );
    let out: Value = serde_json::from_slice(&o.stdout).unwrap();
    let chars: Vec<char> = line.chars().collect();
    let entities = out["entities"].as_array().unwrap();
    assert!(
        entities
            .iter()
            .any(|e| e["label"] == "Chemical" && e["text"] == "Aspirin"),
        "{out}"
    );
    for e in entities {
        let (start, end) = (e["start"].as_u64().unwrap(), e["end"].as_u64().unwrap());
        let text: String = chars[start as usize..end as usize].iter().collect();
        assert_eq!(e["text"].as_str(), Some(text.as_str()));
    }

    // Exported (q8_0: both encoders quantized, the heads f32), it loads back as `trainer tag` and
    // the browser load it, with its types and their descriptions, and takes described types.
    let export = dir.join("export");
    let o = trainer(
        &[
            "export",
            "--model",
            s(&model),
            "--quant",
            "q8_0",
            "--test",
            s(&data.join("invented_dev.conll")),
            "--out",
            s(&export),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let manifest = json(&export.join("manifest.json"));
    assert_eq!(manifest["task"], "binder");
    assert_eq!(manifest["described_types"], json(&data.join("types.json")));
    std::fs::write(
        &extra,
        r#"[{"name": "Organ", "description": "an organ entity is a part of the body such as the liver, heart or kidney."}]"#,
    )
    .unwrap();
    let o = trainer(
        &["tag", "--model", s(&export), "--types", s(&extra)],
        Some(&format!("{line}\n")),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let exported: Value = serde_json::from_slice(&o.stdout).unwrap();
    let spans = |v: &Value| -> Vec<(String, u64, u64)> {
        (v["entities"].as_array().unwrap().iter())
            .map(|e| {
                let label = e["label"].as_str().unwrap().to_string();
                (
                    label,
                    e["start"].as_u64().unwrap(),
                    e["end"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(spans(&exported), spans(&out));

    // `eval` takes described types too, scored as any other (here none is in the gold).
    let o = trainer(
        &[
            "eval",
            "--model",
            s(&model),
            "--test",
            s(&data.join("invented_dev.conll")),
            "--types",
            s(&extra),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("1 type(s) described at tag time"),
        "{}",
        stderr(&o)
    );

    // A trained type described otherwise is refused, not silently redefined.
    std::fs::write(
        &extra,
        r#"[{"name": "Disease", "description": "a disease entity is anything at all."}]"#,
    )
    .unwrap();
    let o = trainer(
        &["tag", "--model", s(&model), "--types", s(&extra)],
        Some(&format!("{line}\n")),
    );
    assert_refused(&o, "`Disease` is already described otherwise");
}

#[test]
fn missing_or_bad_type_descriptions_are_refused_before_training() {
    let dir = scratch("binder-bad");
    let model = dir.join("model");
    let o = train(&model, None, &["--epochs", "1"]);
    assert_refused(&o, "--task binder needs --types FILE");

    let types = dir.join("types.json");
    std::fs::write(
        &types,
        r#"[{"name": "Chemical", "description": "chemical entities are drugs."}]"#,
    )
    .unwrap();
    let o = train(&model, Some(&types), &["--epochs", "1"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("types.json: no description of the data's entity type(s) Disease"),
        "{err}"
    );

    std::fs::write(
        &types,
        r#"[{"name": "Chemical", "descripton": "chemical entities are drugs."}]"#,
    )
    .unwrap();
    let o = train(&model, Some(&types), &["--epochs", "1"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("types.json") && err.contains("descripton"),
        "{err}"
    );
    assert!(!model.join("model.safetensors").exists());
}

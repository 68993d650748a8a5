//! A model's files are checked against each other, so that a mismatch is an error naming the file
//! rather than a model that tags wrong with exit status 0: a config.json that says fewer layers
//! than the weights hold (for `train` and for `tag`), a labels.json reordered or of another length
//! in a trained model, and a flipped byte in an exported model.gguf (for `tag` and `eval`).
//! The base model comes from `trainer fetch-model` (run by scripts/test.sh); set
//! MULTITAG_BASE_MODEL to use another one.
mod common;

use std::io::Cursor;
use std::path::Path;

use candle_core::quantized::gguf_file;
use common::{assert_refused, base_model, fixture, scratch, stderr, train_on_fixture, trainer};
use multitag_core::LabelMap;
use serde_json::Value;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A copy of the model directory `from` (hard links where possible: the files are only read)
/// with config.json saying `layers` encoder layers.
fn with_layers(from: &Path, to: &Path, layers: usize) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let target = to.join(path.file_name().unwrap());
            if std::fs::hard_link(&path, &target).is_err() {
                std::fs::copy(&path, &target).unwrap();
            }
        }
    }
    let config = to.join("config.json");
    let mut value: Value =
        serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    value["num_hidden_layers"] = layers.into();
    // Replace the link, not the file it shares with `from`.
    std::fs::remove_file(&config).unwrap();
    std::fs::write(&config, value.to_string()).unwrap();
}

fn assert_unused_layers(out: &std::process::Output, what: &str) {
    let err = stderr(out);
    assert!(!out.status.success(), "{what}: exit 0; {err}");
    assert!(
        err.contains("model.safetensors: 48 tensors the model")
            && err.contains("config.json: 3 layers) does not use")
            && err.contains("e.g. bert.encoder.layer.3.")
            && err.contains("config.json and the weights disagree")
            && !err.contains("panicked"),
        "{what}: {err}"
    );
}

/// all-MiniLM-L6-v2 has 6 layers: a config that says 3 would train on the first 3 and silently
/// drop the pretrained rest.
#[test]
fn training_from_a_config_with_fewer_layers_is_refused() {
    let dir = scratch("three-layer-base");
    let base = dir.join("base");
    with_layers(&base_model(), &base, 3);
    let out_dir = dir.join("out");
    let out = trainer(
        &[
            "train",
            "--model",
            s(&base),
            "--catalog",
            s(&fixture("catalog_small.csv")),
            "--out",
            s(&out_dir),
            "--epochs",
            "1",
        ],
        None,
    );
    assert_unused_layers(&out, "train");
    assert!(!out_dir.join("model.safetensors").exists());
}

/// One small training run, from the base model as it is (the tensors it carries that BERT never
/// uses, `embeddings.position_ids` and `pooler.*`, are allowed by name), then its files edited
/// one at a time.
#[test]
fn one_trained_model_checked_against_edited_files() {
    let dir = scratch("model-files");
    let model = dir.join("model");
    let catalog = fixture("catalog_small.csv");
    let out = train_on_fixture(&model, &["--epochs", "1", "--lr", "1e-4"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let tag = |model: &Path| trainer(&["tag", "--model", s(model)], Some("Roadster Men Shirt\n"));
    let eval = |model: &Path| {
        trainer(
            &["eval", "--model", s(model), "--catalog", s(&catalog)],
            None,
        )
    };
    let out = tag(&model);
    assert!(out.status.success(), "{}", stderr(&out));

    // config.json with fewer layers than the trained weights.
    let three = dir.join("three-layers");
    with_layers(&model, &three, 3);
    assert_unused_layers(&tag(&three), "tag");
    std::fs::remove_dir_all(&three).unwrap();

    // labels.json reordered: the classifier's shape cannot tell, the hash training.json records
    // can. `trainer train` records it (labels_sha256); written here too in case it did not.
    let training_path = model.join("training.json");
    let mut training: Value =
        serde_json::from_str(&std::fs::read_to_string(&training_path).unwrap()).unwrap();
    let labels_path = model.join("labels.json");
    let labels: LabelMap =
        serde_json::from_str(&std::fs::read_to_string(&labels_path).unwrap()).unwrap();
    let hash = multitag_model::gguf::labels_sha256(&labels);
    if training.get("labels_sha256").is_none() {
        training["labels_sha256"] = hash.clone().into();
        std::fs::write(&training_path, training.to_string()).unwrap();
    }
    assert_eq!(training["labels_sha256"], hash.as_str());
    let original = std::fs::read_to_string(&labels_path).unwrap();
    assert!(labels.len() >= 5, "{labels:?}");
    let mut swapped = labels.clone();
    swapped.labels.swap(1, 2);
    std::fs::write(&labels_path, serde_json::to_string(&swapped).unwrap()).unwrap();
    for (what, out) in [("tag", tag(&model)), ("eval", eval(&model))] {
        let err = stderr(&out);
        assert!(!out.status.success(), "{what}: exit 0; {err}");
        assert!(
            err.contains(s(&labels_path)) && err.contains("labels_sha256"),
            "{what}: {err}"
        );
    }
    // labels.json of another length: named with the weights it does not fit.
    let more = LabelMap::from_entity_types(&["BRAND", "COLOR", "GENDER", "TYPE", "SIZE"]);
    std::fs::write(&labels_path, serde_json::to_string(&more).unwrap()).unwrap();
    let out = tag(&model);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(s(&labels_path))
            && err.contains(s(&model.join("model.safetensors")))
            && err.contains("classifier.weight"),
        "{err}"
    );
    std::fs::write(&labels_path, original).unwrap();

    // An export with one flipped bit in its tensor data.
    let export = dir.join("export");
    let out = trainer(
        &[
            "export",
            "--model",
            s(&model),
            "--quant",
            "q8_0",
            "--out",
            s(&export),
            "--catalog",
            s(&catalog),
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let gguf = export.join("model.gguf");
    let mut bytes = std::fs::read(&gguf).unwrap();
    let content = gguf_file::Content::read(&mut Cursor::new(&bytes)).unwrap();
    let info = &content.tensor_infos["bert.encoder.layer.2.attention.self.query.weight"];
    let at = (content.tensor_data_offset + info.offset) as usize + 100;
    let out = tag(&export);
    assert!(out.status.success(), "intact export: {}", stderr(&out));
    bytes[at] ^= 0x04;
    std::fs::write(&gguf, &bytes).unwrap();
    for (what, out) in [("tag", tag(&export)), ("eval", eval(&export))] {
        let err = stderr(&out);
        assert!(!out.status.success(), "{what}: exit 0; {err}");
        assert!(
            err.contains(s(&gguf))
                && err.contains("the weights do not match their checksum")
                && !err.contains("panicked"),
            "{what}: {err}"
        );
    }
}

/// A `BertForTokenClassification` directory as Hugging Face transformers writes one: no
/// labels.json or training.json, the tags in config.json's `id2label`, here in another row order
/// than ours (sorted, `O` last, as many tools write it), with the classifier's rows permuted to
/// match. It tags exactly as the model it was made from, and evaluates and exports.
#[test]
fn a_hugging_face_token_classifier_is_tagged_evaluated_and_exported() {
    use candle_core::{Device, Tensor};
    let dir = scratch("hf-layout");
    let ours = dir.join("ours");
    let o = train_on_fixture(&ours, &["--epochs", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(ours.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["architectures"][0], "BertForTokenClassification");
    let labels: LabelMap =
        serde_json::from_str(&std::fs::read_to_string(ours.join("labels.json")).unwrap()).unwrap();
    for (i, tag) in labels.labels.iter().enumerate() {
        assert_eq!(config["id2label"][i.to_string()], tag.as_str());
        assert_eq!(config["label2id"][tag], i);
    }

    let hf = dir.join("hf");
    std::fs::create_dir_all(&hf).unwrap();
    std::fs::copy(ours.join("tokenizer.json"), hf.join("tokenizer.json")).unwrap();
    let mut sorted = labels.labels.clone();
    sorted.sort_by_key(|t| (t == "O", t.clone()));
    let rows: Vec<u32> = sorted
        .iter()
        .map(|t| labels.id(t).unwrap() as u32)
        .collect();
    let mut tensors =
        candle_core::safetensors::load(ours.join("model.safetensors"), &Device::Cpu).unwrap();
    let rows = Tensor::new(rows.as_slice(), &Device::Cpu).unwrap();
    for name in ["classifier.weight", "classifier.bias"] {
        let permuted = tensors[name].index_select(&rows, 0).unwrap();
        tensors.insert(name.to_string(), permuted);
    }
    candle_core::safetensors::save(&tensors, hf.join("model.safetensors")).unwrap();
    let mut config = config.clone();
    config["id2label"] = sorted
        .iter()
        .enumerate()
        .map(|(i, t)| (i.to_string(), Value::from(t.as_str())))
        .collect::<serde_json::Map<_, _>>()
        .into();
    config["label2id"] = sorted
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), Value::from(i)))
        .collect::<serde_json::Map<_, _>>()
        .into();
    std::fs::write(hf.join("config.json"), config.to_string()).unwrap();

    let titles =
        "Urban Loom Men Navy Blue Slim Fit Checked Casual Shirt\nKesar Looms Women Beige Kurta\n";
    let tag = |m: &Path| {
        let o = trainer(&["tag", "--model", s(m)], Some(titles));
        assert!(o.status.success(), "{}", stderr(&o));
        o.stdout
    };
    // The entities and their scores, these up to float rounding (the softmax sums the rows in
    // another order).
    let entities = |stdout: Vec<u8>| -> Vec<(Value, f64)> {
        String::from_utf8(stdout)
            .unwrap()
            .lines()
            .flat_map(|l| {
                let line: Value = serde_json::from_str(l).unwrap();
                line["entities"].as_array().unwrap().clone()
            })
            .map(|mut e| {
                let score = e["score"].as_f64().unwrap();
                e.as_object_mut().unwrap().remove("score");
                (e, score)
            })
            .collect()
    };
    let (from_hf, from_ours) = (entities(tag(&hf)), entities(tag(&ours)));
    assert!(!from_ours.is_empty());
    assert_eq!(from_hf.len(), from_ours.len());
    for ((a, x), (b, y)) in from_hf.iter().zip(&from_ours) {
        assert_eq!(a, b);
        assert!((x - y).abs() < 1e-5, "{x} {y}");
    }
    let catalog = fixture("catalog_small.csv");
    let o = trainer(&["eval", "--model", s(&hf), "--catalog", s(&catalog)], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let export = dir.join("export");
    let o = trainer(
        &[
            "export",
            "--model",
            s(&hf),
            "--out",
            s(&export),
            "--catalog",
            s(&catalog),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(export.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["labels"], serde_json::json!(sorted));
    // Quantized: the same entities, scores aside.
    let labels_of = |e: Vec<(Value, f64)>| e.into_iter().map(|(e, _)| e).collect::<Vec<_>>();
    assert_eq!(labels_of(entities(tag(&export))), labels_of(from_ours));

    // labels.json and id2label that disagree are refused.
    std::fs::write(
        hf.join("labels.json"),
        serde_json::to_string(&labels).unwrap(),
    )
    .unwrap();
    let o = trainer(&["tag", "--model", s(&hf)], Some(titles));
    assert_refused(&o, "differ from config.json's `id2label`");
}

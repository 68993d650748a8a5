//! Round trips of the tagging model through the GGUF export: every storage type, every way of
//! multiplying, the label map, and damaged files: checksums, headers, and files that disagree
//! with themselves (a config or labels that do not fit the tensors), for GGUF and float weights.
use std::collections::HashMap;
use std::io::Cursor;

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use multitag_core::LabelMap;

use super::{NerModel, Tagger};
use crate::gguf::*;
use crate::models::BertConfig;
use crate::nn::{DenseCompute, Mode};
use crate::tasks::{predictor_from_gguf, predictor_from_tensors, Predictor, TaskKind};
use crate::testing::{max_diff, TOKENIZER};

/// Rows of 32 (q8_0 and q5_0 blocks) and a 256-wide intermediate, so every storage type of
/// the rule shows up: under `q4k`, q4k for the feed-forward output, q8_0 for the other dense
/// matrices, q5_0 for the embedding tables.
const CONFIG: &str = r#"{"vocab_size": 40, "hidden_size": 32, "num_hidden_layers": 2,
    "num_attention_heads": 4, "intermediate_size": 256, "max_position_embeddings": 32,
    "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
    "type_vocab_size": 2, "layer_norm_eps": 1e-12, "model_type": "bert"}"#;

fn labels() -> LabelMap {
    LabelMap::from_entity_types(&["BRAND", "TYPE"])
}

/// A tiny model with seeded weights (candle's own initialisation cannot be seeded), so the
/// quantization errors below are the same on every run.
fn float_model() -> (VarMap, NerModel) {
    let config = BertConfig::from_json("c", CONFIG).unwrap();
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let model = NerModel::load(&config, labels(), vb).unwrap();
    let mut state = 0x5EED_u64;
    let mut uniform = move || {
        // splitmix64, mapped to [-1, 1)
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f32 / (1u64 << 52) as f32 - 1.0
    };
    {
        let data = varmap.data().lock().unwrap();
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        for name in names {
            let var = &data[name];
            let dims = var.dims().to_vec();
            let values: Vec<f32> = (0..var.elem_count())
                .map(|_| {
                    let u = uniform();
                    if name.ends_with("LayerNorm.weight") {
                        1.0 + 0.1 * u
                    } else if dims.len() == 1 {
                        0.1 * u
                    } else if name.contains("_embeddings") {
                        0.5 * u
                    } else {
                        // unit-variance outputs for unit-variance inputs
                        u * (3.0 / dims[1] as f32).sqrt()
                    }
                })
                .collect();
            var.set(&Tensor::from_vec(values, dims, &Device::Cpu).unwrap())
                .unwrap();
        }
    }
    (varmap, model)
}

fn export(varmap: &VarMap, quant: Quant) -> (Vec<u8>, Vec<StoredTensor>) {
    let tensors: HashMap<String, Tensor> = varmap
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    let labels = labels();
    write_gguf(
        &tensors,
        &ExportMetadata {
            config_json: CONFIG,
            labels: Some(&labels),
            quant,
            source: "test",
            task: TaskKind::Tagging.name(),
            tokenizer_json: Some(TOKENIZER.as_bytes()),
            task_metadata: &[],
            float_prefixes: &[],
        },
    )
    .unwrap()
}

fn logits(model: &NerModel) -> Tensor {
    let dev = Device::Cpu;
    let ids = Tensor::new(&[[1u32, 5, 6, 7, 2], [1, 8, 39, 2, 0]], &dev).unwrap();
    let mask = Tensor::new(&[[1u32, 1, 1, 1, 1], [1, 1, 1, 1, 0]], &dev).unwrap();
    model.forward(&ids, &mask, &Mode::Infer).unwrap().1
}

#[test]
fn storage_rule_falls_back_per_tensor() {
    let dense = "bert.encoder.layer.0.attention.self.query.weight";
    let table = "bert.embeddings.word_embeddings.weight";
    assert_eq!(Role::of(dense), Role::Dense);
    assert_eq!(Role::of("classifier.weight"), Role::Dense);
    assert_eq!(Role::of(table), Role::Table);
    assert_eq!(
        Role::of("bert.embeddings.position_embeddings.weight"),
        Role::Table
    );
    assert_eq!(Quant::Q4K.storage_type(dense, &[384, 1536]), GgmlDType::Q4K);
    assert_eq!(
        Quant::Q4K.storage_type(dense, &[1536, 384]),
        GgmlDType::Q8_0
    );
    assert_eq!(
        Quant::Q4K.storage_type(table, &[30522, 384]),
        GgmlDType::Q5_0
    );
    assert_eq!(
        Quant::Q4K.storage_type(table, &[30522, 512]),
        GgmlDType::Q4K
    );
    assert_eq!(Quant::Q4K.storage_type("x.bias", &[384]), GgmlDType::F32);
    assert_eq!(Quant::Q8_0.storage_type(dense, &[9, 384]), GgmlDType::Q8_0);
    assert_eq!(Quant::Q8_0.storage_type(dense, &[9, 16]), GgmlDType::F16);
    assert_eq!(Quant::F16.storage_type(table, &[9, 16]), GgmlDType::F16);
    assert_eq!(Quant::F32.storage_type(dense, &[9, 16]), GgmlDType::F32);
    assert_eq!("Q8_0".parse::<Quant>().unwrap(), Quant::Q8_0);
    assert!("q3".parse::<Quant>().is_err());
}

/// What rounding weights to int8 per row adds (measured 8.5e-3 of the largest logit for the
/// f32 export), with a factor of two.
const INT8_ROUNDING: f32 = 0.02;

#[test]
fn round_trip_gives_the_float_model_logits() {
    let (varmap, float) = float_model();
    let expected = logits(&float);
    let scale = expected
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    // Measured with these seeded weights (max |difference| / max |logit|), with the quantized
    // matmul: f32 0, f16 3e-4, q8_0 1.5e-2, q4k 5.2e-2; the bounds leave about a factor of
    // two. Dequantized to f32 the input rows are not quantized, so the error is no larger;
    // int8 (per-row weights, 14-bit inputs) measured within the same bounds.
    for (quant, tolerance) in [
        (Quant::F32, 1e-6),
        (Quant::F16, 1e-3),
        (Quant::Q8_0, 3e-2),
        (Quant::Q4K, 0.1),
    ] {
        let (bytes, stored) = export(&varmap, quant);
        let load = |compute| NerModel::from_gguf("model.gguf", &bytes, &Device::Cpu, compute);
        let model = load(DenseCompute::Quantized).unwrap();
        let dequantized = load(DenseCompute::F32).unwrap();
        let int8 = load(DenseCompute::Int8).unwrap();
        for (compute, model, extra) in [
            ("quantized", &model, 0.0),
            ("f32", &dequantized, 0.0),
            ("int8", &int8, INT8_ROUNDING),
        ] {
            let diff = max_diff(&expected, &logits(model));
            assert!(
                diff <= (tolerance + extra) * scale.max(1.0),
                "{quant} ({compute} matmul): max |logit difference| {diff} (scale {scale})"
            );
        }
        assert!(!dequantized.classifier.is_quantized(), "{quant}");
        let types: std::collections::BTreeSet<&str> =
            stored.iter().map(|t| t.dtype.as_str()).collect();
        let want: &[&str] = match quant {
            Quant::F32 => &["f32"],
            Quant::F16 => &["f16", "f32"],
            Quant::Q8_0 => &["f32", "q8_0"],
            Quant::Q4K => &["f32", "q4k", "q5_0", "q8_0"],
        };
        assert_eq!(types.into_iter().collect::<Vec<_>>(), want, "{quant}");
        let quantized = model.classifier.is_quantized();
        assert_eq!(
            quantized,
            matches!(quant, Quant::Q8_0 | Quant::Q4K),
            "{quant}"
        );
    }
}

#[test]
fn metadata_carries_config_labels_and_quant() {
    let (varmap, _) = float_model();
    let (bytes, stored) = export(&varmap, Quant::Q8_0);
    let file = GgufFile::read("m.gguf", bytes.as_slice()).unwrap();
    assert_eq!(file.labels().unwrap(), labels());
    assert_eq!(file.config().unwrap().intermediate_size, 256);
    assert_eq!(file.metadata_str(KEY_QUANT).unwrap(), "q8_0");
    assert_eq!(file.metadata_str(KEY_SOURCE).unwrap(), "test");
    let listed: Vec<String> = file.tensors().into_iter().map(|t| t.0).collect();
    let names: Vec<String> = stored.iter().map(|t| t.name.clone()).collect();
    assert_eq!(listed, names);
    assert!(names.contains(&"bert.encoder.layer.1.attention.self.query.weight".into()));
    assert!(names.contains(&"classifier.bias".into()));
    // Deterministic bytes for the same model.
    assert!(bytes == export(&varmap, Quant::Q8_0).0);
}

/// The predictor an exported file names, as the commands and the browser load it.
fn predictor(bytes: &[u8]) -> Result<Box<dyn Predictor>, crate::ModelError> {
    let file = GgufFile::read("model.gguf", bytes)?;
    predictor_from_gguf(
        &file,
        "tokenizer.json",
        TOKENIZER.as_bytes(),
        &Device::Cpu,
        DenseCompute::default(),
    )
}

/// The exported bytes with their metadata edited (tensors copied as they are).
fn with_metadata(
    bytes: &[u8],
    edit: impl FnOnce(&mut HashMap<String, gguf_file::Value>),
) -> Vec<u8> {
    let mut reader = Cursor::new(bytes);
    let content = gguf_file::Content::read(&mut reader).unwrap();
    let mut metadata = content.metadata.clone();
    edit(&mut metadata);
    let tensors: Vec<(String, QTensor)> = content
        .tensor_infos
        .keys()
        .map(|name| {
            let t = content.tensor(&mut reader, name, &Device::Cpu).unwrap();
            (name.clone(), t)
        })
        .collect();
    let meta: Vec<(&str, &gguf_file::Value)> =
        metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut out = Cursor::new(Vec::new());
    gguf_file::write(&mut out, &meta, &refs).unwrap();
    out.into_inner()
}

#[test]
fn the_task_key_picks_the_predictor() {
    let (varmap, _) = float_model();
    let (bytes, _) = export(&varmap, Quant::Q8_0);
    let file = GgufFile::read("model.gguf", bytes.as_slice()).unwrap();
    assert_eq!(file.metadata_str(KEY_TASK).unwrap(), "tagging");
    let p = predictor(&bytes).unwrap();
    assert_eq!(p.task(), TaskKind::Tagging);
    assert_eq!(p.entity_types(), vec!["BRAND", "TYPE"]);

    // Files exported before the key existed are tagging models.
    let old = with_metadata(&bytes, |m| {
        m.remove(KEY_TASK);
    });
    assert_eq!(predictor(&old).unwrap().task(), TaskKind::Tagging);

    // A task this build does not know is refused, naming the file, the key and the task.
    let newer = with_metadata(&bytes, |m| {
        m.insert(
            KEY_TASK.into(),
            gguf_file::Value::String("coreference".into()),
        );
    });
    let err = predictor(&newer)
        .err()
        .expect("an unknown task loaded")
        .to_string();
    assert!(
        err.contains("model.gguf") && err.contains(KEY_TASK) && err.contains("`coreference`"),
        "{err}"
    );
    // A relation model is not a tagger: its predictor is the span extractor.
    let relations = with_metadata(&bytes, |m| {
        m.insert(
            KEY_TASK.into(),
            gguf_file::Value::String("relations".into()),
        );
    });
    let err = predictor(&relations).err().expect("a tagger").to_string();
    assert!(err.contains("relation extraction model"), "{err}");
    let typed = with_metadata(&bytes, |m| {
        m.insert(KEY_TASK.into(), gguf_file::Value::U32(1));
    });
    let err = predictor(&typed)
        .err()
        .expect("a numeric task loaded")
        .to_string();
    assert!(err.contains(KEY_TASK), "{err}");
}

#[test]
fn a_tokenizer_that_is_not_the_exported_one_is_refused_before_parsing() {
    let (varmap, _) = float_model();
    let (bytes, _) = export(&varmap, Quant::Q8_0);
    let file = GgufFile::read("model.gguf", bytes.as_slice()).unwrap();
    let mut damaged = TOKENIZER.as_bytes().to_vec();
    let at = damaged.len() / 2;
    damaged[at] ^= 0x20;
    let err = predictor_from_gguf(
        &file,
        "tokenizer.json",
        &damaged,
        &Device::Cpu,
        DenseCompute::default(),
    )
    .err()
    .expect("a damaged tokenizer loaded")
    .to_string();
    assert!(
        err.contains("tokenizer.json") && err.contains(KEY_TOKENIZER_SHA256),
        "{err}"
    );
}

#[test]
fn tagger_from_gguf_tags_like_the_float_tagger() {
    let (varmap, float) = float_model();
    let (bytes, _) = export(&varmap, Quant::F32);
    let tagger = predictor(&bytes).unwrap();
    let float = Tagger::new(
        float,
        crate::tokenize::WordTokenizer::from_bytes("t", TOKENIZER.as_bytes()).unwrap(),
        Device::Cpu,
    );
    let titles = [
        "Roadster Men Navy Blue Shirt",
        "blue shirt",
        "नीला Shirt 👕",
    ];
    let a = float.extract(&titles, 2).unwrap();
    let b = tagger.extract(&titles, 2).unwrap();
    // Same entities; scores agree up to float summation order (the export's matrices are
    // stored transposed for the GEMM).
    for (a, b) in a.iter().zip(&b) {
        assert_eq!(a.entities.len(), b.entities.len());
        for (x, y) in a.entities.iter().zip(&b.entities) {
            assert_eq!(
                (&x.label, &x.text, x.start, x.end),
                (&y.label, &y.text, y.start, y.end)
            );
            assert!((x.score - y.score).abs() < 1e-5, "{x:?} vs {y:?}");
        }
    }
    let e = tagger.embed(&titles, 16, 2).unwrap();
    assert_eq!(e.dims(), &[3, 32]);
}

#[test]
fn corrupt_or_truncated_bytes_are_errors_naming_the_file() {
    let (varmap, _) = float_model();
    let (bytes, _) = export(&varmap, Quant::Q8_0);
    let mut flipped = bytes.clone();
    flipped[0] ^= 0xFF;
    let mut header_cut = bytes[..40].to_vec();
    header_cut.extend_from_slice(&[0xFF; 8]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("garbage", b"definitely not a gguf file".to_vec()),
        ("bad magic", flipped),
        ("header cut", header_cut),
        ("half", bytes[..bytes.len() / 2].to_vec()),
        ("tail cut", bytes[..bytes.len() - 40].to_vec()),
    ];
    for (what, case) in cases {
        let err =
            match Tagger::from_gguf(&case, TOKENIZER.as_bytes(), &Device::Cpu, DenseCompute::F32) {
                Ok(_) => panic!("{what}: loaded"),
                Err(e) => e.to_string(),
            };
        assert!(err.contains("model.gguf"), "{what}: {err}");
    }
    let err = match Tagger::from_gguf(&bytes, b"{not json", &Device::Cpu, DenseCompute::F32) {
        Ok(_) => panic!("bad tokenizer loaded"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("tokenizer.json"), "{err}");
}

#[test]
fn a_file_without_our_metadata_is_refused_clearly() {
    let q = QTensor::quantize(
        &Tensor::zeros((2, 32), DType::F32, &Device::Cpu).unwrap(),
        GgmlDType::Q8_0,
    )
    .unwrap();
    let mut out = Cursor::new(Vec::new());
    gguf_file::write(&mut out, &[], &[("x", &q)]).unwrap();
    let err =
        match NerModel::from_gguf("other.gguf", out.get_ref(), &Device::Cpu, DenseCompute::F32) {
            Ok(_) => panic!("loaded"),
            Err(e) => e.to_string(),
        };
    assert!(
        err.contains("other.gguf") && err.contains(KEY_CONFIG),
        "{err}"
    );
}

/// Where the stored bytes of tensor `name` start in an exported file.
fn data_offset(bytes: &[u8], name: &str) -> usize {
    let content = gguf_file::Content::read(&mut Cursor::new(bytes)).unwrap();
    (content.tensor_data_offset + content.tensor_infos[name].offset) as usize
}

fn load_error(bytes: &[u8]) -> String {
    match predictor(bytes) {
        Ok(_) => panic!("loaded"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn export_carries_checksums_and_a_flipped_data_byte_is_refused() {
    let (varmap, _) = float_model();
    let (bytes, _) = export(&varmap, Quant::Q8_0);
    let file = GgufFile::read("model.gguf", bytes.as_slice()).unwrap();
    for key in [KEY_TENSORS_SHA256, KEY_LABELS_SHA256, KEY_CONFIG_SHA256] {
        let hash = file.metadata_str(key).unwrap();
        assert!(
            hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
            "{key}: {hash}"
        );
    }
    assert_eq!(
        file.metadata_str(KEY_LABELS_SHA256).unwrap(),
        labels_sha256(&labels())
    );
    // One bit of one weight, in a quantized matrix and in an f32 vector: loading would give
    // slightly different tags, with no error.
    for name in [
        "bert.encoder.layer.1.attention.self.query.weight",
        "classifier.bias",
    ] {
        let mut flipped = bytes.clone();
        flipped[data_offset(&bytes, name) + 5] ^= 0x01;
        let err = load_error(&flipped);
        assert!(
            err.contains("model.gguf")
                && err.contains("the weights do not match their checksum")
                && err.contains("export it again"),
            "{name}: {err}"
        );
    }
}

#[test]
fn labels_or_config_edited_in_the_metadata_are_refused() {
    let (varmap, _) = float_model();
    let (bytes, _) = export(&varmap, Quant::Q8_0);
    // Same tags, two swapped: the shapes cannot tell, the checksum can.
    let swapped = with_metadata(&bytes, |m| {
        m.insert(
            KEY_LABELS.into(),
            gguf_file::Value::String(r#"["O","B-TYPE","B-BRAND","I-BRAND","I-TYPE"]"#.into()),
        );
    });
    let err = load_error(&swapped);
    assert!(
        err.contains("model.gguf") && err.contains(KEY_LABELS_SHA256),
        "{err}"
    );
    let config = with_metadata(&bytes, |m| {
        m.insert(
            KEY_CONFIG.into(),
            gguf_file::Value::String(CONFIG.replace("1e-12", "1e-5")),
        );
    });
    let err = load_error(&config);
    assert!(
        err.contains("model.gguf") && err.contains(KEY_CONFIG_SHA256),
        "{err}"
    );
}

#[test]
fn files_exported_without_checksums_load_unchecked() {
    let (varmap, _) = float_model();
    let (bytes, _) = export(&varmap, Quant::Q8_0);
    let old = with_metadata(&bytes, |m| {
        for key in [KEY_TENSORS_SHA256, KEY_LABELS_SHA256, KEY_CONFIG_SHA256] {
            m.remove(key);
        }
    });
    assert_eq!(
        predictor(&old).unwrap().entity_types(),
        vec!["BRAND", "TYPE"]
    );
}

/// A file that disagrees with itself, as an older export (no checksums) or a hand edit could:
/// the model must use every tensor, and the tag list must fit the classifier and the scheme.
#[test]
fn config_or_labels_that_do_not_fit_the_tensors_are_refused() {
    let (varmap, _) = float_model();
    let (bytes, _) = export(&varmap, Quant::Q8_0);
    let unchecked = |key: &str, value: String| {
        with_metadata(&bytes, |m| {
            m.remove(KEY_CONFIG_SHA256);
            m.remove(KEY_LABELS_SHA256);
            m.insert(key.into(), gguf_file::Value::String(value));
        })
    };
    let one_layer = unchecked(
        KEY_CONFIG,
        CONFIG.replace(r#""num_hidden_layers": 2"#, r#""num_hidden_layers": 1"#),
    );
    let err = load_error(&one_layer);
    assert!(
        err.contains("model.gguf: 16 tensors the model (multitag.config: 1 layers) does not use")
            && err.contains("e.g. bert.encoder.layer.1.attention.output.LayerNorm.bias"),
        "{err}"
    );
    let more_tags = LabelMap::from_entity_types(&["BRAND", "TYPE", "COLOR"]);
    let err = load_error(&unchecked(
        KEY_LABELS,
        serde_json::to_string(&more_tags.labels).unwrap(),
    ));
    assert!(
        err.contains("model.gguf: multitag.labels: 7 tags")
            && err.contains("`classifier.weight` in model.gguf has 5 rows"),
        "{err}"
    );
    for (tags, why) in [
        (
            r#"["O","B-BRAND","I-BRAND","B-TYPE","B-TYPE"]"#,
            "appears twice",
        ),
        (
            r#"["O","PER","B-BRAND","I-BRAND","I-TYPE"]"#,
            "`PER` is not an IOB2 tag",
        ),
        (
            r#"["B-BRAND","I-BRAND","B-TYPE","I-TYPE","B-TYPE"]"#,
            "appears twice",
        ),
        (
            r#"["B-BRAND","I-BRAND","B-TYPE","I-TYPE","I-X"]"#,
            "no \"O\"",
        ),
    ] {
        let err = load_error(&unchecked(KEY_LABELS, tags.into()));
        assert!(
            err.contains("model.gguf: multitag.labels") && err.contains(why),
            "{tags}: {err}"
        );
    }
}

/// A header whose reader error would quote what it read: a 5-dimensional tensor with a 5000
/// byte name full of terminal escapes.
#[test]
fn a_damaged_header_is_quoted_capped_and_escaped() {
    let mut bytes = b"GGUF".to_vec();
    bytes.extend_from_slice(&3u32.to_le_bytes());
    bytes.extend_from_slice(&1u64.to_le_bytes()); // tensors
    bytes.extend_from_slice(&0u64.to_le_bytes()); // metadata entries
    let name: Vec<u8> = b"\x1b[2J\x07\xff\xfe".repeat(700);
    bytes.extend_from_slice(&(name.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&name);
    bytes.extend_from_slice(&5u32.to_le_bytes());
    bytes.extend_from_slice(&[0; 64]);
    let err = match GgufFile::read("model.gguf", bytes.as_slice()) {
        Ok(_) => panic!("loaded"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("model.gguf") && err.contains("GGUF"), "{err}");
    assert!(err.len() < 400, "{} characters: {err}", err.len());
    assert!(
        err.chars().all(|c| c == ' ' || c.is_ascii_graphic()),
        "{err}"
    );
}

/// candle's reader divides by `general.alignment` unchecked: 0 must be an error, not a panic.
#[test]
fn a_zero_alignment_is_an_error_not_a_panic() {
    let (varmap, _) = float_model();
    let (bytes, _) = export(&varmap, Quant::Q8_0);
    for value in [
        gguf_file::Value::U32(0),
        gguf_file::Value::U8(0),
        gguf_file::Value::I16(0),
    ] {
        let zero = with_metadata(&bytes, |m| {
            m.insert("general.alignment".into(), value.clone());
        });
        let err = load_error(&zero);
        assert!(
            err.contains("model.gguf") && err.contains("general.alignment"),
            "{err}"
        );
    }
    let fine = with_metadata(&bytes, |m| {
        m.insert("general.alignment".into(), gguf_file::Value::U32(32));
    });
    assert!(predictor(&fine).is_ok());
}

/// The float path ([`predictor_from_tensors`], a trained model directory): the same rules.
#[test]
fn float_weights_must_all_be_used_and_fit_the_labels() {
    let (varmap, _) = float_model();
    let tensors: HashMap<String, Tensor> = varmap
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    let config = BertConfig::from_json("c", CONFIG).unwrap();
    let load = |config: &BertConfig, labels: LabelMap, tensors: HashMap<String, Tensor>| {
        let tokenizer =
            crate::tokenize::WordTokenizer::from_bytes("t", TOKENIZER.as_bytes()).unwrap();
        match predictor_from_tensors(
            TaskKind::Tagging,
            "m/model.safetensors",
            config,
            labels,
            tensors,
            tokenizer,
            &Device::Cpu,
        ) {
            Ok(_) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    };
    load(&config, labels(), tensors.clone()).unwrap();

    let one_layer = BertConfig {
        num_hidden_layers: 1,
        ..config.clone()
    };
    let err = load(&one_layer, labels(), tensors.clone()).unwrap_err();
    assert!(
        err.contains("m/model.safetensors: 16 tensors the model (m/config.json: 1 layers)")
            && err.contains("bert.encoder.layer.1.")
            && err.contains("m/config.json and the weights disagree"),
        "{err}"
    );

    let mut extra = tensors.clone();
    extra.insert(
        "lm_head.weight".into(),
        Tensor::zeros((2, 2), DType::F32, &Device::Cpu).unwrap(),
    );
    let err = load(&config, labels(), extra).unwrap_err();
    assert!(
        err.contains("1 tensor the model") && err.contains("lm_head.weight"),
        "{err}"
    );

    let more = LabelMap::from_entity_types(&["BRAND", "TYPE", "COLOR"]);
    let err = load(&config, more, tensors).unwrap_err();
    assert!(
        err.contains("7 tags") && err.contains("m/model.safetensors has 5 rows"),
        "{err}"
    );
}

//! A trained span model at inference: sentences (pre-split words, or raw text split by
//! [`split_words`], the catalog's word rules) to entities and relations, in batches, through
//! [`extract`](super::extract::extract). Raw text gets character offsets for every entity, so the
//! output can be laid over the input as the tagger's is.
//!
//! Two sources, one model: a trained directory's float tensors ([`SpanExtractor::from_tensors`])
//! or an exported GGUF file ([`SpanExtractor::from_gguf`], what `trainer export` writes and the
//! browser's worker loads), both read through [`Weights`] by [`SpanModel::load`]. An export
//! carries what the directory keeps beside its weights: the types (`multitag.types`, a SpERT
//! types file) and the model's settings with its decoding ([`SpanModelSettings`],
//! `multitag.span_model`), so it needs no other file but its tokenizer.
use std::collections::HashMap;

use candle_core::{Device, Tensor};
use multitag_core::relations::{read_types, DecodeConfig, Decoded, TypeSet};
use multitag_core::{char_slice, split_words, Entity};
use serde::{Deserialize, Serialize};

use super::example::SubwordSentence;
use super::extract::{extract, ExtractConfig};
use super::model::{SpanModel, SpanSettings};
use crate::config::BertConfig;
use crate::error::ModelError;
use crate::gguf::{GgufFile, KEY_SPAN_MODEL, KEY_TYPES};
use crate::nn::weights::TrackedTensors;
use crate::nn::{DenseCompute, Weights};
use crate::tasks::{check_all_read, metadata_json, open_export, TaskKind};
use crate::tokenize::WordTokenizer;

pub use multitag_core::{FoundRelation, TextRelations};

pub struct SpanExtractor {
    pub model: SpanModel,
    pub tokenizer: WordTokenizer,
    pub config: ExtractConfig,
    device: Device,
}

/// What an exported relation model records beside its types (`multitag.span_model`): the
/// model's shape and switches, and how it decodes (a directory keeps these as training.json's
/// options). The chunk sizes of [`ExtractConfig`] are not recorded: they never change a result.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SpanModelSettings {
    pub settings: SpanSettings,
    /// Longest candidate span, in words.
    pub max_span_words: usize,
    pub decode: DecodeConfig,
}

impl SpanModelSettings {
    /// The settings and decoding of `extractor`.
    pub fn of(extractor: &SpanExtractor) -> Self {
        Self {
            settings: extractor.model.settings,
            max_span_words: extractor.config.max_span_words,
            decode: extractor.config.decode,
        }
    }

    /// The extraction these settings decode with (default chunk sizes).
    pub fn extract_config(&self) -> ExtractConfig {
        ExtractConfig {
            max_span_words: self.max_span_words,
            decode: self.decode,
            ..ExtractConfig::default()
        }
    }
}

impl SpanExtractor {
    pub fn new(
        model: SpanModel,
        tokenizer: WordTokenizer,
        config: ExtractConfig,
        device: Device,
    ) -> Self {
        Self {
            model,
            tokenizer,
            config,
            device,
        }
    }

    /// A trained model's float weights (`source` names them in errors); every tensor must be
    /// read by the model `config`, `types` and `settings` describe. Decodes with SpERT's
    /// defaults until [`Self::config`] is set.
    pub fn from_tensors(
        source: &str,
        config: &BertConfig,
        types: TypeSet,
        settings: SpanSettings,
        tensors: HashMap<String, Tensor>,
        tokenizer: WordTokenizer,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let (vb, log) = TrackedTensors::var_builder(tensors, device);
        let model = SpanModel::load(config, types, settings, vb)
            .map_err(|e| ModelError::Weights(format!("{source}: {e}")))?;
        check_all_read(source, config, &log)?;
        Ok(Self::new(
            model,
            tokenizer,
            ExtractConfig::default(),
            device.clone(),
        ))
    }

    /// An exported model ([`crate::gguf`], task `relations`): its config, types, settings and
    /// decoding from the metadata, its weights through [`Weights`] like every exported model's.
    /// The encoder's dense layers multiply as `compute` says; the heads (stored f32 by `trainer
    /// export`) always in f32, so the scores that are compared with the thresholds are computed
    /// as the float model computes them whatever the encoder's kernel. `tokenizer_json` is checked
    /// against the file's checksum before it is parsed, and every tensor in the file must be used.
    pub fn from_gguf(
        file: &GgufFile,
        tokenizer_source: &str,
        tokenizer_json: &[u8],
        device: &Device,
        compute: DenseCompute,
    ) -> Result<Self, ModelError> {
        let config = open_export(
            file,
            TaskKind::Relations,
            "train one with --task relations",
            tokenizer_source,
            tokenizer_json,
        )?;
        let types_source = format!("{}: {KEY_TYPES}", file.source());
        let types = read_types(&types_source, file.metadata_str(KEY_TYPES)?)
            .map_err(|e| ModelError::Config(e.to_string()))?;
        let saved: SpanModelSettings = metadata_json(file, KEY_SPAN_MODEL)?;
        let weights = Weights::gguf(file, compute, device).with_head_compute(DenseCompute::F32);
        let model = SpanModel::load(&config, types, saved.settings, weights)
            .map_err(|e| ModelError::Weights(format!("{}: {e}", file.source())))?;
        file.check_every_tensor_read(&config)?;
        let tokenizer = WordTokenizer::from_bytes(tokenizer_source, tokenizer_json)?;
        Ok(Self::new(
            model,
            tokenizer,
            saved.extract_config(),
            device.clone(),
        ))
    }

    /// What an export records of this model beside its weights ([`crate::gguf::TASK_KEYS`]): the
    /// types as a SpERT types file and [`SpanModelSettings`] as JSON.
    pub fn export_metadata(&self) -> Vec<(&'static str, String)> {
        vec![
            (KEY_TYPES, self.types().to_spert_json()),
            (
                KEY_SPAN_MODEL,
                serde_json::to_string(&SpanModelSettings::of(self))
                    .expect("plain settings serialize"),
            ),
        ]
    }

    /// The encoder's longest input, in sub-words (`[CLS]` and `[SEP]` included).
    pub fn max_positions(&self) -> usize {
        self.model.max_positions()
    }

    pub fn types(&self) -> &TypeSet {
        &self.model.types
    }

    /// Entities and relations of pre-split sentences (word indices), `batch_size` sentences per
    /// encoder pass. A sentence longer than the encoder's positions is an error naming it.
    pub fn extract_words(
        &self,
        sentences: &[Vec<&str>],
        batch_size: usize,
    ) -> Result<Vec<Decoded>, ModelError> {
        let mut out = Vec::with_capacity(sentences.len());
        for (b, chunk) in sentences.chunks(batch_size.max(1)).enumerate() {
            let encoded = chunk
                .iter()
                .map(|words| SubwordSentence::encode(&self.tokenizer, words))
                .collect::<Result<Vec<_>, _>>()?;
            let refs: Vec<&SubwordSentence> = encoded.iter().collect();
            let found = extract(&self.model, &refs, &self.config, &self.device).map_err(|e| {
                // `extract` numbers sentences within the batch.
                ModelError::Input(format!(
                    "batch from sentence {}: {e}",
                    b * batch_size.max(1)
                ))
            })?;
            out.extend(found);
        }
        Ok(out)
    }

    /// Entities (character offsets into each text) and relations of raw texts, each split into
    /// words by [`split_words`].
    pub fn extract_texts(
        &self,
        texts: &[&str],
        batch_size: usize,
    ) -> Result<Vec<TextRelations>, ModelError> {
        let words: Vec<Vec<multitag_core::Word>> = texts.iter().map(|t| split_words(t)).collect();
        let split: Vec<Vec<&str>> = words
            .iter()
            .map(|w| w.iter().map(|w| w.text.as_str()).collect())
            .collect();
        let decoded = self.extract_words(&split, batch_size)?;
        let types = &self.model.types;
        Ok(texts
            .iter()
            .zip(&words)
            .zip(decoded)
            .map(|((text, words), found)| {
                let entities: Vec<Entity> = found
                    .entities
                    .iter()
                    .map(|e| {
                        let (start, end) =
                            (words[e.entity.start].start, words[e.entity.end - 1].end);
                        Entity {
                            label: types.entities[e.entity.ty].name.clone(),
                            text: char_slice(text, start, end).to_string(),
                            start,
                            end,
                            score: e.score,
                        }
                    })
                    .collect();
                let index = |mention| found.entities.iter().position(|e| e.entity == mention);
                let relations = found
                    .relations
                    .iter()
                    .filter_map(|r| {
                        let t = r.relation;
                        Some(FoundRelation {
                            label: types.relations[t.ty].name.clone(),
                            head: index(t.head)?,
                            tail: index(t.tail)?,
                            score: r.score,
                        })
                    })
                    .collect();
                TextRelations {
                    text: text.to_string(),
                    entities,
                    relations,
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use candle_core::quantized::{gguf_file, QTensor};

    use super::*;
    use crate::gguf::{write_gguf, ExportMetadata, Quant, KEY_TASK_SHA256};
    use crate::tasks::relations::fixtures;

    /// `fixtures::config(0.0)`'s text, as an export records it.
    const CONFIG: &str = r#"{"vocab_size": 20, "hidden_size": 16, "num_hidden_layers": 2,
        "num_attention_heads": 4, "intermediate_size": 32, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
        "max_position_embeddings": 32, "type_vocab_size": 2}"#;

    const HEADS: [&str; 3] = [
        "width_embedding.",
        "entity_classifier.",
        "relation_classifier.",
    ];

    const TEXTS: [&str; 3] = [
        "John Smith works for acme-corp .",
        "Mary lives in Paris",
        "acme",
    ];

    /// A float extractor over seeded pseudo-random weights (candle's CPU generator cannot be
    /// seeded, so every matrix is overwritten from a SplitMix64 stream: the same model every
    /// run), its entity classifier far from BERT's small start and its "none" class never
    /// winning, so that it finds entities and relations; and its tensors. Decodes with a
    /// threshold and longest span of its own, which an export must keep.
    fn float_extractor() -> (SpanExtractor, HashMap<String, Tensor>) {
        let settings = fixtures::settings(0.0);
        let (varmap, _) = fixtures::model(settings, 0.0);
        let mut rng = multitag_core::SplitMix64::new(0x5eed_0e11);
        let tensors: HashMap<String, Tensor> = {
            let vars = varmap.data().lock().unwrap();
            let mut names: Vec<&String> = vars.keys().collect();
            names.sort();
            for name in names {
                let var = &vars[name];
                if var.dims().len() != 2 {
                    continue; // LayerNorm ones, zero biases: as initialised.
                }
                let scale = if name == "entity_classifier.weight" {
                    1.0
                } else {
                    0.1
                };
                let values: Vec<f32> = (0..var.elem_count())
                    .map(|_| (rng.below(2001) as f32 / 1000.0 - 1.0) * scale)
                    .collect();
                var.set(&Tensor::from_vec(values, var.shape(), &Device::Cpu).unwrap())
                    .unwrap();
            }
            vars["entity_classifier.bias"]
                .set(&Tensor::new(&[-100f32, 0., 0., 0.], &Device::Cpu).unwrap())
                .unwrap();
            (vars.iter())
                .map(|(name, var)| (name.clone(), var.as_tensor().copy().unwrap()))
                .collect()
        };
        let mut extractor = SpanExtractor::from_tensors(
            "model.safetensors",
            &fixtures::config(0.0),
            fixtures::types(),
            settings,
            tensors.clone(),
            fixtures::tokenizer(),
            &Device::Cpu,
        )
        .unwrap();
        extractor.config.max_span_words = 3;
        extractor.config.decode.rel_threshold = 0.3;
        (extractor, tensors)
    }

    fn export(
        extractor: &SpanExtractor,
        tensors: &HashMap<String, Tensor>,
        quant: Quant,
    ) -> Vec<u8> {
        write_gguf(
            tensors,
            &ExportMetadata {
                config_json: CONFIG,
                labels: None,
                quant,
                source: "test",
                task: TaskKind::Relations.name(),
                tokenizer_json: Some(fixtures::TOKENIZER.as_bytes()),
                task_metadata: &extractor.export_metadata(),
                float_prefixes: &HEADS,
            },
        )
        .unwrap()
        .0
    }

    fn load(bytes: &[u8], compute: DenseCompute) -> Result<SpanExtractor, ModelError> {
        let file = GgufFile::read("model.gguf", bytes)?;
        SpanExtractor::from_gguf(
            &file,
            "tokenizer.json",
            fixtures::TOKENIZER.as_bytes(),
            &Device::Cpu,
            compute,
        )
    }

    fn entity_keys(t: &TextRelations) -> Vec<(String, usize, usize)> {
        t.entities
            .iter()
            .map(|e| (e.label.clone(), e.start, e.end))
            .collect()
    }

    fn relation_keys(t: &TextRelations) -> Vec<(String, usize, usize)> {
        t.relations
            .iter()
            .map(|r| (r.label.clone(), r.head, r.tail))
            .collect()
    }

    /// An f32 export, read back through the GGUF `Weights` and multiplied in f32, finds exactly
    /// what the float model finds (scores within 1e-5: the same numbers, summed in another
    /// order); its types and settings are the float model's, its heads f32, and it has no tag
    /// list. Quantized (q8_0) and with the int8 kernel it loads too and scores every entity both
    /// find within 0.05 of the float model. (Whether they find the same entities is checked on a
    /// trained model, tests/export.rs: random weights leave near ties.)
    #[test]
    fn an_export_carries_its_types_and_settings_and_extracts_as_the_float_model() {
        let (float, tensors) = float_extractor();
        let expected = float.extract_texts(&TEXTS, 2).unwrap();
        let found: usize = expected.iter().map(|t| t.relations.len()).sum();
        assert!(found > 0, "the float model finds no relation: {expected:?}");
        for quant in [Quant::F32, Quant::Q8_0] {
            let bytes = export(&float, &tensors, quant);
            let file = GgufFile::read("model.gguf", bytes.as_slice()).unwrap();
            assert!(file.labels().is_err(), "a relation model has no tag list");
            for (name, _, dtype) in file.tensors() {
                if HEADS.iter().any(|h| name.starts_with(h)) {
                    assert_eq!(dtype, candle_core::quantized::GgmlDType::F32, "{name}");
                }
            }
            for compute in [DenseCompute::F32, DenseCompute::Int8] {
                let exported = load(&bytes, compute).unwrap();
                assert_eq!(exported.types(), float.types());
                assert_eq!(
                    SpanModelSettings::of(&exported),
                    SpanModelSettings::of(&float)
                );
                let got = exported.extract_texts(&TEXTS, 2).unwrap();
                assert_eq!(got.len(), expected.len());
                let exact = quant == Quant::F32 && compute == DenseCompute::F32;
                let mut worst = 0f32;
                for (x, y) in expected.iter().zip(&got) {
                    assert_eq!(x.text, y.text);
                    if exact {
                        assert_eq!(entity_keys(x), entity_keys(y), "{}", x.text);
                        assert_eq!(relation_keys(x), relation_keys(y), "{}", x.text);
                    }
                    for e in &x.entities {
                        let same = y
                            .entities
                            .iter()
                            .find(|f| (&f.label, f.start, f.end) == (&e.label, e.start, e.end));
                        if let Some(f) = same {
                            worst = worst.max((e.score - f.score).abs());
                        }
                    }
                }
                let limit = if exact { 1e-5 } else { 5e-2 };
                assert!(
                    worst <= limit,
                    "{quant} {compute:?}: scores differ by {worst}"
                );
            }
        }
    }

    /// Candle's GGUF file with one metadata value changed or removed.
    fn with_metadata(
        bytes: &[u8],
        edit: impl FnOnce(&mut HashMap<String, gguf_file::Value>),
    ) -> Vec<u8> {
        let mut reader = Cursor::new(bytes);
        let content = gguf_file::Content::read(&mut reader).unwrap();
        let mut metadata = content.metadata.clone();
        edit(&mut metadata);
        let tensors: Vec<(String, QTensor)> = (content.tensor_infos.keys())
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
    fn edited_types_or_settings_and_other_tasks_are_refused() {
        let (float, tensors) = float_extractor();
        let bytes = export(&float, &tensors, Quant::F32);
        let error = |bytes: &[u8]| {
            load(bytes, DenseCompute::F32)
                .err()
                .expect("loaded")
                .to_string()
        };
        // Two entity types swapped: the shapes cannot tell, the checksum can.
        let swapped = with_metadata(&bytes, |m| {
            let types = fixtures::TYPES
                .replace("\"Loc\"", "\"X\"")
                .replace("\"Org\"", "\"Loc\"");
            m.insert(
                KEY_TYPES.into(),
                gguf_file::Value::String(types.replace("\"X\"", "\"Org\"")),
            );
        });
        let err = error(&swapped);
        assert!(
            err.contains("model.gguf") && err.contains(KEY_TASK_SHA256),
            "{err}"
        );
        let threshold = with_metadata(&bytes, |m| {
            let text = serde_json::to_string(&SpanModelSettings {
                decode: DecodeConfig {
                    rel_threshold: 0.9,
                    ..float.config.decode
                },
                ..SpanModelSettings::of(&float)
            })
            .unwrap();
            m.insert(KEY_SPAN_MODEL.into(), gguf_file::Value::String(text));
        });
        assert!(error(&threshold).contains(KEY_TASK_SHA256));
        // Without the checksum (as a hand edit could leave it), a missing key is named.
        let bare = with_metadata(&bytes, |m| {
            m.remove(KEY_TASK_SHA256);
            m.remove(KEY_SPAN_MODEL);
        });
        assert!(error(&bare).contains(KEY_SPAN_MODEL), "{}", error(&bare));
        // A tagger's file is not a relation model, and a relation model is not a tagger.
        let tagger = with_metadata(&bytes, |m| {
            m.insert(
                crate::gguf::KEY_TASK.into(),
                gguf_file::Value::String("tagging".into()),
            );
        });
        assert!(error(&tagger).contains("a tagging model, not a relations one"));
        let file = GgufFile::read("model.gguf", bytes.as_slice()).unwrap();
        let err = crate::predictor_from_gguf(
            &file,
            "tokenizer.json",
            fixtures::TOKENIZER.as_bytes(),
            &Device::Cpu,
            DenseCompute::F32,
        )
        .err()
        .expect("a relation model read as a tagger")
        .to_string();
        assert!(err.contains("relation extraction model"), "{err}");
    }
}

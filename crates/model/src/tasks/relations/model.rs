//! The SpERT / SpERT.MT model: the shared encoder (`bert.`), the width embedding
//! (`width_embedding.`), the span classifier (`entity_classifier.`) and the relation classifier
//! (`relation_classifier.`), SpERT.MT's binary heads under `binary.` of each classifier.
//!
//! Scoring runs in three calls, so that training (sampled spans and pairs) and inference (every
//! span, chunked) share them: [`SpanModel::encode`] a batch of sentences once, score any list of
//! spans ([`SpanModel::spans`]), then any list of pairs of those spans ([`SpanModel::pairs`]).
use candle_core::{Device, Module, Result, Tensor};
use candle_nn::{Embedding, Init};
use multitag_core::relations::TypeSet;
use serde::{Deserialize, Serialize};
use std::ops::Range;

use super::head::{between, PooledRows, RelationClassifier, SpanClassifier};
use crate::config::BertConfig;
use crate::models::BertEncoder;
use crate::nn::{Mode, Weights};
use crate::tokenize::collate;

/// The model's shape and SpERT.MT's switches (see the module doc of [`super`] for each choice).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SpanSettings {
    /// Width embedding size (SpERT's `--size_embedding`, 25).
    pub width_dim: usize,
    /// Rows of the width table, widths `0..width_rows` in words (SpERT: 100); wider spans read
    /// the last row.
    pub width_rows: usize,
    /// Dropout on span and pair representations (SpERT's `--prop_drop`, 0.1).
    pub dropout: f32,
    /// SpERT.MT (1): the entity-vs-non-entity head and its loss weight.
    pub span_aux: bool,
    pub span_aux_weight: f64,
    /// SpERT.MT (1): the related-vs-unrelated head and its loss weight.
    pub pair_aux: bool,
    pub pair_aux_weight: f64,
    /// SpERT.MT (2): the span classifier's IoU head, its loss weight, and decoding that resolves
    /// same-type overlaps by it.
    pub iou_boundaries: bool,
    pub iou_weight: f64,
    /// SpERT.MT (3): the arguments' entity class distributions in the pair representation.
    pub enriched: bool,
}

impl SpanSettings {
    /// SpERT as published: none of SpERT.MT's additions.
    pub fn spert() -> Self {
        SpanSettings {
            width_dim: 25,
            width_rows: 100,
            dropout: 0.1,
            span_aux: false,
            span_aux_weight: 1.0,
            pair_aux: false,
            pair_aux_weight: 1.0,
            iou_boundaries: false,
            iou_weight: 1.0,
            enriched: false,
        }
    }

    /// SpERT.MT: all three additions.
    pub fn spert_mt() -> Self {
        SpanSettings {
            span_aux: true,
            pair_aux: true,
            iou_boundaries: true,
            enriched: true,
            ..Self::spert()
        }
    }

    /// The settings a variant name asks for: `spert`, `spert-mt` (all three additions), or
    /// `spert` with any of `+mtl` (1: both binary heads), `+iou` (2) and `+enriched` (3), the
    /// ablation rows; e.g. `spert+iou+enriched`.
    pub fn from_variant(spec: &str) -> std::result::Result<Self, String> {
        let mut parts = spec.split('+');
        let mut settings = match parts.next().unwrap_or_default() {
            "spert" => Self::spert(),
            "spert-mt" => Self::spert_mt(),
            other => {
                return Err(format!(
                    "span method `{other}`: spert, spert-mt, or spert+mtl/+iou/+enriched"
                ))
            }
        };
        for addition in parts {
            match addition {
                "mtl" => (settings.span_aux, settings.pair_aux) = (true, true),
                "iou" => settings.iou_boundaries = true,
                "enriched" => settings.enriched = true,
                other => {
                    return Err(format!(
                        "`{spec}`: unknown addition `+{other}` (+mtl, +iou, +enriched)"
                    ))
                }
            }
        }
        Ok(settings)
    }

    /// The variant's name, as [`Self::from_variant`] reads it (`spert-mt` for all three
    /// additions), whatever the weights and scales.
    pub fn variant(&self) -> String {
        let mtl = self.span_aux && self.pair_aux;
        if mtl && self.iou_boundaries && self.enriched {
            return "spert-mt".into();
        }
        let mut name = String::from("spert");
        for (on, addition) in [
            (mtl, "+mtl"),
            (self.iou_boundaries, "+iou"),
            (self.enriched, "+enriched"),
        ] {
            if on {
                name.push_str(addition);
            }
        }
        name
    }

    fn check(&self) -> Result<()> {
        if self.width_rows < 2 || self.width_dim == 0 {
            candle_core::bail!(
                "width embedding of {} rows of {}",
                self.width_rows,
                self.width_dim
            );
        }
        if !(0.0..1.0).contains(&self.dropout) {
            candle_core::bail!("dropout {} out of range", self.dropout);
        }
        Ok(())
    }
}

impl Default for SpanSettings {
    fn default() -> Self {
        Self::spert_mt()
    }
}

pub struct SpanModel {
    pub encoder: BertEncoder,
    pub width_embedding: Embedding,
    pub entity_classifier: SpanClassifier,
    pub relation_classifier: RelationClassifier,
    pub types: TypeSet,
    pub settings: SpanSettings,
}

/// A span of sentence `sentence` (its index in the encoded batch): its sub-word positions and its
/// width in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanRef {
    pub sentence: usize,
    pub subwords: Range<usize>,
    pub words: usize,
}

/// Scored spans: their max-pools `(n, hidden)` and width embeddings `(n, width_dim)` (what pairs
/// are built from), entity logits `(n, 1 + types)`, binary logits and IoU logits `(n,)`.
pub struct SpanScores {
    pub pooled: Tensor,
    pub widths: Tensor,
    pub logits: Tensor,
    pub binary: Option<Tensor>,
    pub iou: Option<Tensor>,
}

impl SpanScores {
    /// Scores of consecutive chunks of one span list, as one.
    pub fn cat(chunks: &[SpanScores]) -> Result<Self> {
        let cat = |f: fn(&SpanScores) -> &Tensor| {
            Tensor::cat(&chunks.iter().map(f).collect::<Vec<_>>(), 0)
        };
        let optional = |f: fn(&SpanScores) -> Option<&Tensor>| match chunks
            .iter()
            .map(f)
            .collect::<Option<Vec<_>>>()
        {
            Some(t) if !t.is_empty() => Tensor::cat(&t, 0).map(Some),
            _ => Ok(None),
        };
        Ok(SpanScores {
            pooled: cat(|c| &c.pooled)?,
            widths: cat(|c| &c.widths)?,
            logits: cat(|c| &c.logits)?,
            binary: optional(|c| c.binary.as_ref())?,
            iou: optional(|c| c.iou.as_ref())?,
        })
    }
}

/// Scored pairs: relation logits `(p, relation types)` and binary logits `(p,)`.
pub struct PairScores {
    pub logits: Tensor,
    pub binary: Option<Tensor>,
}

impl SpanModel {
    /// `weights` is the checkpoint root; the encoder lives under `bert.`. The classifiers' sizes
    /// come from `types` and `settings`.
    pub fn load<'a>(
        config: &BertConfig,
        types: TypeSet,
        settings: SpanSettings,
        weights: impl Into<Weights<'a>>,
    ) -> Result<Self> {
        settings.check()?;
        let vb = weights.into();
        let (hidden, width) = (config.hidden_size, settings.width_dim);
        let classes = 1 + types.entities.len();
        let width_embedding = match vb.pp("width_embedding") {
            Weights::Float(w) => {
                let init = Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                };
                let table = w.get_with_hints((settings.width_rows, width), "weight", init)?;
                Embedding::new(table, width)
            }
            w => w.float_embedding(settings.width_rows, width)?,
        };
        Ok(Self {
            encoder: BertEncoder::load(config, vb.pp("bert"))?,
            width_embedding,
            entity_classifier: SpanClassifier::load(
                hidden,
                width,
                classes,
                (settings.span_aux, settings.iou_boundaries),
                settings.dropout,
                vb.pp("entity_classifier"),
            )?,
            relation_classifier: RelationClassifier::load(
                hidden,
                width,
                types.relations.len(),
                settings.enriched.then_some(classes),
                settings.pair_aux,
                settings.dropout,
                vb.pp("relation_classifier"),
            )?,
            types,
            settings,
        })
    }

    /// The longest sentence the encoder takes, in sub-words.
    pub fn max_positions(&self) -> usize {
        self.encoder.config.max_position_embeddings
    }

    /// Entity classes: "none" and the types.
    pub fn classes(&self) -> usize {
        1 + self.types.entities.len()
    }

    /// The top-layer states of a batch of sentences (sub-word ids), as rows to pool.
    pub fn encode(&self, sentences: &[&[u32]], device: &Device, mode: &Mode) -> Result<PooledRows> {
        let (ids, mask) = collate(sentences, 0, device)?;
        PooledRows::new(&self.encoder.forward(&ids, &mask, mode)?)
    }

    /// Scores `spans` of the encoded batch.
    pub fn spans(&self, rows: &PooledRows, spans: &[SpanRef], mode: &Mode) -> Result<SpanScores> {
        let ranges: Vec<Range<usize>> = spans
            .iter()
            .map(|s| rows.row(s.sentence, s.subwords.start)..rows.row(s.sentence, s.subwords.end))
            .collect();
        let pooled = rows.max_pool(&ranges)?;
        let cls: Vec<usize> = spans.iter().map(|s| rows.row(s.sentence, 0)).collect();
        let cls = rows.gather(&cls)?;
        let last = self.settings.width_rows - 1;
        let widths: Vec<u32> = spans.iter().map(|s| s.words.min(last) as u32).collect();
        let widths = self
            .width_embedding
            .forward(&Tensor::new(widths, pooled.device())?)?;
        let scored = self
            .entity_classifier
            .forward(&cls, &pooled, &widths, mode)?;
        Ok(SpanScores {
            pooled,
            widths,
            logits: scored.logits,
            binary: scored.binary,
            iou: scored.iou,
        })
    }

    /// Scores `pairs` `(head, tail)` of `spans` (indices into them, and into `scored`, which
    /// holds their scores); both spans of a pair belong to one sentence.
    pub fn pairs(
        &self,
        rows: &PooledRows,
        spans: &[SpanRef],
        scored: &SpanScores,
        pairs: &[(usize, usize)],
        mode: &Mode,
    ) -> Result<PairScores> {
        let device = scored.pooled.device();
        let index = |f: fn(&(usize, usize)) -> usize| {
            let ids: Vec<u32> = pairs.iter().map(|p| f(p) as u32).collect();
            Tensor::new(ids, device)
        };
        let (heads, tails) = (index(|p| p.0)?, index(|p| p.1)?);
        let context: Vec<Range<usize>> = pairs
            .iter()
            .map(|&(h, t)| {
                let (h, t) = (&spans[h], &spans[t]);
                let r = between(&h.subwords, &t.subwords);
                rows.row(h.sentence, r.start)..rows.row(h.sentence, r.end)
            })
            .collect();
        let mut parts = vec![
            rows.max_pool(&context)?,
            scored.pooled.index_select(&heads, 0)?,
            scored.pooled.index_select(&tails, 0)?,
            scored.widths.index_select(&heads, 0)?,
            scored.widths.index_select(&tails, 0)?,
        ];
        if self.relation_classifier.enriched().is_some() {
            // Detached: see SpERT.MT (3) in the module doc.
            let probs = candle_nn::ops::softmax_last_dim(&scored.logits.detach())?;
            parts.push(probs.index_select(&heads, 0)?);
            parts.push(probs.index_select(&tails, 0)?);
        }
        let parts: Vec<&Tensor> = parts.iter().collect();
        let scored = self.relation_classifier.forward(&parts, mode)?;
        Ok(PairScores {
            logits: scored.logits,
            binary: scored.binary,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::relations::fixtures;

    /// Each switch of SpERT.MT that adds parameters removes them when off.
    #[test]
    fn switches_shape_the_parameters() {
        let count = |s: SpanSettings| {
            let (varmap, model) = fixtures::model(s, 0.0);
            let vars = varmap.data().lock().unwrap();
            let input = vars["relation_classifier.weight"]
                .as_tensor()
                .dim(1)
                .unwrap();
            let names: Vec<String> = vars.keys().cloned().collect();
            (names.len(), input, model.relation_classifier.enriched())
        };
        let full = fixtures::settings(0.1);
        let (all, input, enriched) = count(full);
        assert_eq!(enriched, Some(4));
        // 3 * 16 hidden + 2 * 4 width + 2 * 4 classes.
        assert_eq!(input, 64);
        let no_span_aux = count(SpanSettings {
            span_aux: false,
            ..full
        });
        assert_eq!(no_span_aux.0, all - 2);
        let no_pair_aux = count(SpanSettings {
            pair_aux: false,
            ..full
        });
        assert_eq!(no_pair_aux.0, all - 2);
        let no_iou = count(SpanSettings {
            iou_boundaries: false,
            ..full
        });
        assert_eq!(no_iou.0, all - 2);
        let plain = count(SpanSettings {
            enriched: false,
            ..full
        });
        assert_eq!((plain.0, plain.1, plain.2), (all, 56, None));
        let spert = count(SpanSettings {
            width_dim: 4,
            width_rows: 12,
            ..SpanSettings::spert()
        });
        assert_eq!((spert.0, spert.1), (all - 6, 56));
        let (varmap, _) = fixtures::model(full, 0.0);
        let vars = varmap.data().lock().unwrap();
        for name in [
            "width_embedding.weight",
            "entity_classifier.weight",
            "entity_classifier.binary.weight",
            "entity_classifier.iou.bias",
            "relation_classifier.binary.bias",
            "bert.embeddings.word_embeddings.weight",
        ] {
            assert!(vars.contains_key(name), "{name}");
        }
    }

    #[test]
    fn variant_names_round_trip() {
        for name in [
            "spert",
            "spert-mt",
            "spert+mtl",
            "spert+iou",
            "spert+enriched",
        ] {
            assert_eq!(SpanSettings::from_variant(name).unwrap().variant(), name);
        }
        let all = SpanSettings::from_variant("spert+mtl+iou+enriched").unwrap();
        assert_eq!(all, SpanSettings::spert_mt());
        let iou = SpanSettings::from_variant("spert+iou").unwrap();
        assert!(iou.iou_boundaries && !iou.enriched && !iou.span_aux && !iou.pair_aux);
        for bad in ["", "bert", "spert+crf", "spert-mt+x"] {
            assert!(SpanSettings::from_variant(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_settings_are_refused() {
        let (_, model) = fixtures::model(fixtures::settings(0.0), 0.0);
        assert_eq!(model.max_positions(), 32);
        let varmap = candle_nn::VarMap::new();
        let vb = candle_nn::VarBuilder::from_varmap(&varmap, candle_core::DType::F32, &Device::Cpu);
        let settings = SpanSettings {
            dropout: 1.5,
            ..SpanSettings::spert_mt()
        };
        assert!(SpanModel::load(&fixtures::config(0.0), fixtures::types(), settings, vb).is_err());
    }
}

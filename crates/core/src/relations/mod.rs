//! Span-based joint entity and relation extraction (SpERT, Eberts and Ulges 2020; SpERT.MT, Xue
//! and Lu): the pure-Rust parts, everything but the network.
//!
//! The method: every span of up to `max_span_words` words is a candidate entity, classified into
//! an entity type or "none"; every ordered pair of spans classified as entities is a candidate
//! relation, scored per relation type with a sigmoid and kept above a threshold. Training sees all
//! gold entities and a bounded random draw of non-entity spans, all gold relation pairs and a
//! bounded draw of unrelated gold-entity pairs. SpERT.MT adds a boundary task: for each span, its
//! best intersection-over-union with a gold entity and that entity's type.
//!
//! One file per stage; each module doc says what it does in detail and why:
//! - [`document`]: SpERT's types file and JSON documents (`[{"tokens", "entities": [{"type",
//!   "start", "end"}], "relations": [{"type", "head", "tail"}]}]`, word indices, `end` exclusive)
//!   read into [`Document`]s, bad documents skipped and reported by index and field;
//! - [`sampling`]: candidate spans, training samples with negative entities and relations drawn
//!   from a caller's seeded [`SplitMix64`](crate::SplitMix64), and IoU targets;
//! - [`decode`](mod@decode): span classes and relation scores to entities and relations, as
//!   SpERT's `prediction.py` (overlapping predictions kept unless asked otherwise, or SpERT.MT's
//!   boundary scores resolve same-type overlaps);
//! - [`evaluate`](mod@evaluate): SpERT's evaluator: entities, relations strict (with entity types)
//!   and boundaries-only, micro and macro, per type;
//! - [`text`]: a raw text's entities (character offsets) and relations, as `trainer tag` prints
//!   them and the browser shows them.
//!
//! Choices that hold throughout:
//! - Everything is over words. Mapping words to sub-words (SpERT pools sub-word vectors of a span)
//!   belongs to the model; word and sub-word spans are in one-to-one correspondence, so every rule
//!   here (equality, overlap, order by start) gives SpERT's results.
//! - Types are indices into the [`TypeSet`], in the types file's order; the model's class `i + 1`
//!   is entity type `i`, class 0 "none"; relation type `i` is the model's relation output `i`.
//! - The semantics are SpERT's own, read from its code (lavis-nlp/spert), including its quirks,
//!   so that our scores can be compared with published ones; each module doc names those quirks.

pub mod decode;
pub mod document;
pub mod evaluate;
pub mod sampling;
pub mod text;

pub use decode::{
    decode, entity_classes, relation_candidates, remove_overlapping, span_classes, DecodeConfig,
    Decoded, ScoredEntity, ScoredRelation, REL_THRESHOLD,
};
pub use document::{
    read_documents, read_types, Document, DocumentError, DocumentRead, EntityMention, EntityType,
    RelationMention, RelationTriple, RelationType, TypeSet, WordSpan,
};
pub use evaluate::{evaluate, ExtractionReport, TaskScores};
pub use sampling::{
    enumerate_spans, iou, iou_target, negative_pairs, negative_spans, positive_pairs, span_count,
    train_sample, EntitySample, IouTarget, RelationSample, SamplingConfig, TrainSample,
    MAX_SPAN_WORDS, NEG_ENTITIES, NEG_RELATIONS,
};
pub use text::{FoundRelation, TextRelations};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SplitMix64;
    use std::path::Path;

    /// Reads `dir/name` with the types file `types`; `None` (with a note) when the data is absent.
    fn read(dir: &Path, types: &str, name: &str) -> Option<(TypeSet, Vec<Document>)> {
        let Ok(types_text) = std::fs::read_to_string(dir.join(types)) else {
            eprintln!("skipped: {} not found", dir.join(types).display());
            return None;
        };
        let types = read_types(types, &types_text).unwrap();
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let read = read_documents(name, &text, &types).unwrap();
        assert!(read.skipped.is_empty(), "{name}: {:?}", &read.skipped[..1]);
        Some((types, read.documents))
    }

    /// The shared CoNLL04 and ADE files read without a problem, with their published sizes; on
    /// each, gold scored against itself is perfect and a training sample is well-formed.
    #[test]
    fn shared_spert_datasets_read_cleanly() {
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
        let files = [
            ("conll04", "conll04_types.json", "conll04_train.json", 922),
            ("conll04", "conll04_types.json", "conll04_dev.json", 231),
            ("conll04", "conll04_types.json", "conll04_test.json", 288),
            ("ade", "ade_types.json", "ade_split_0_train.json", 3845),
            ("ade", "ade_types.json", "ade_split_0_test.json", 427),
        ];
        for (dir, types, name, count) in files {
            let Some((types, docs)) = read(&data.join(dir), types, name) else {
                continue;
            };
            assert_eq!(docs.len(), count, "{name}");
            let as_predicted: Vec<Decoded> = docs
                .iter()
                .map(|d| Decoded {
                    entities: d
                        .entities
                        .iter()
                        .map(|&entity| ScoredEntity { entity, score: 1.0 })
                        .collect(),
                    relations: d
                        .triples()
                        .into_iter()
                        .map(|relation| ScoredRelation {
                            relation,
                            score: 1.0,
                        })
                        .collect(),
                })
                .collect();
            let r = evaluate(&types, &docs, &as_predicted, false).unwrap();
            for s in [&r.entities, &r.relations_strict, &r.relations_boundaries] {
                assert_eq!((s.micro.f1, s.macro_avg.f1), (1.0, 1.0), "{name}");
            }
            let mut rng = SplitMix64::new(1);
            for d in docs.iter().take(50) {
                let s = train_sample(d, &SamplingConfig::default(), &mut rng);
                let positives = d.entities.len();
                assert!(s.entities.len() <= positives + NEG_ENTITIES);
                assert!(s.entities[positives..]
                    .iter()
                    .all(|e| e.ty.is_none() && e.target.iou < 1.0));
                assert!(s
                    .relations
                    .iter()
                    .all(|r| r.head < s.entities.len() && r.tail < s.entities.len()));
            }
        }
    }
}

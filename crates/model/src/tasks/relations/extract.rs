//! Inference for a batch of sentences, as SpERT's `_forward_inference` and `prediction.py`: one
//! encoder pass for the batch; every span of up to `max_span_words` words of every sentence
//! ([`enumerate_spans`], SpERT's order) classified, in chunks of `span_chunk` spans; the ordered
//! pairs of spans classified as entities ([`entity_classes`], same-type overlaps resolved by the
//! IoU head where the model has one; [`relation_candidates`]) scored with one sigmoid per
//! relation type, in chunks of `pair_chunk` pairs; then [`decode()`] per sentence. Chunks bound the
//! memory of the pooling (a chunk gathers `chunk × longest range × hidden` values) and never
//! change a result: each span and pair is scored on its own.
use candle_core::{Device, Result};
use multitag_core::relations::{
    decode, entity_classes, enumerate_spans, relation_candidates, DecodeConfig, Decoded, WordSpan,
    MAX_SPAN_WORDS,
};

use super::example::SubwordSentence;
use super::model::{SpanModel, SpanRef, SpanScores};
use crate::nn::Mode;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExtractConfig {
    /// Longest candidate span, in words (SpERT's `--max_span_size`, 10).
    pub max_span_words: usize,
    pub decode: DecodeConfig,
    /// Spans scored per chunk.
    pub span_chunk: usize,
    /// Pairs scored per chunk.
    pub pair_chunk: usize,
}

impl Default for ExtractConfig {
    fn default() -> Self {
        ExtractConfig {
            max_span_words: MAX_SPAN_WORDS,
            decode: DecodeConfig::default(),
            span_chunk: 512,
            pair_chunk: 256,
        }
    }
}

/// Entities and relations of each sentence (word indices). A sentence longer than the encoder's
/// positions is an error naming it, never cut.
pub fn extract(
    model: &SpanModel,
    sentences: &[&SubwordSentence],
    config: &ExtractConfig,
    device: &Device,
) -> Result<Vec<Decoded>> {
    for (i, s) in sentences.iter().enumerate() {
        if let Err(e) = s.check_fits(model.max_positions()) {
            candle_core::bail!("sentence {i}: {e}");
        }
    }
    let mode = Mode::Infer;
    let ids: Vec<&[u32]> = sentences.iter().map(|s| s.ids.as_slice()).collect();
    let rows = model.encode(&ids, device, &mode)?;
    let word_spans: Vec<Vec<WordSpan>> = sentences
        .iter()
        .map(|s| enumerate_spans(s.words.len(), config.max_span_words))
        .collect();
    let spans: Vec<SpanRef> = word_spans
        .iter()
        .zip(sentences)
        .enumerate()
        .flat_map(|(sentence, (spans, s))| {
            spans.iter().map(move |&span| SpanRef {
                sentence,
                subwords: s.subwords(span),
                words: span.len(),
            })
        })
        .collect();
    let mut out = vec![Decoded::default(); sentences.len()];
    if spans.is_empty() {
        return Ok(out);
    }
    let chunks = spans
        .chunks(config.span_chunk.max(1))
        .map(|chunk| model.spans(&rows, chunk, &mode))
        .collect::<Result<Vec<_>>>()?;
    let scored = SpanScores::cat(&chunks)?;
    let probs = candle_nn::ops::softmax_last_dim(&scored.logits)?;
    let probs: Vec<f32> = probs.flatten_all()?.to_vec1()?;
    // SpERT.MT's IoU head: each span's predicted IoU, which resolves same-type overlaps.
    let boundary: Option<Vec<f32>> = scored
        .iou
        .as_ref()
        .map(|u| candle_nn::ops::sigmoid(u)?.to_vec1())
        .transpose()?;
    let boundary_of = |first: usize, n: usize| boundary.as_ref().map(|b| &b[first..first + n]);
    let classes = model.classes();

    // Candidate pairs per sentence, as indices into `spans`.
    let mut firsts = Vec::with_capacity(sentences.len());
    let mut local_pairs = Vec::with_capacity(sentences.len());
    let mut pairs = Vec::new();
    let mut first = 0;
    for s in &word_spans {
        let span_probs = &probs[first * classes..(first + s.len()) * classes];
        let class = entity_classes(s, span_probs, classes, boundary_of(first, s.len()))
            .map_err(candle_core::Error::msg)?;
        let candidates = relation_candidates(&class);
        pairs.extend(candidates.iter().map(|&(h, t)| (first + h, first + t)));
        local_pairs.push(candidates);
        firsts.push(first);
        first += s.len();
    }
    let relation_types = model.types.relations.len();
    let mut rel_scores = Vec::with_capacity(pairs.len() * relation_types);
    for chunk in pairs.chunks(config.pair_chunk.max(1)) {
        let scores = model.pairs(&rows, &spans, &scored, chunk, &mode)?;
        let sigmoid = candle_nn::ops::sigmoid(&scores.logits)?;
        rel_scores.extend(sigmoid.flatten_all()?.to_vec1::<f32>()?);
    }

    let mut pair_first = 0;
    for (b, spans) in word_spans.iter().enumerate() {
        let (first, n_pairs) = (firsts[b], local_pairs[b].len());
        out[b] = decode(
            spans,
            &probs[first * classes..(first + spans.len()) * classes],
            boundary_of(first, spans.len()),
            &local_pairs[b],
            &rel_scores[pair_first * relation_types..(pair_first + n_pairs) * relation_types],
            &model.types,
            &config.decode,
        )
        .map_err(candle_core::Error::msg)?;
        pair_first += n_pairs;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::DropoutRng;
    use crate::tasks::relations::{fixtures, RelationLoss};
    use crate::tasks::Task;
    use candle_core::{Device, Tensor};
    use candle_nn::{AdamW, Optimizer, ParamsAdamW};
    use multitag_core::relations::{RelationTriple, SamplingConfig};

    fn sentences() -> Vec<SubwordSentence> {
        let t = fixtures::tokenizer();
        [
            &["John", "Smith", "works", "for", "acme-corp", "."][..],
            &["Mary", "lives", "in", "Paris"],
            &["acme"],
        ]
        .iter()
        .map(|w| SubwordSentence::encode(&t, w).unwrap())
        .collect()
    }

    /// Each sentence's predictions are the same batched with others (in small chunks) as alone.
    #[test]
    fn batching_and_chunking_do_not_change_predictions() -> Result<()> {
        let (varmap, model) = fixtures::model(fixtures::settings(0.0), 0.0);
        // Weights far from BERT's small start, so that spans get different types, and "none"
        // never wins, so that every sentence has pairs.
        let vars = varmap.data().lock().unwrap();
        let weight = &vars["entity_classifier.weight"];
        weight.set(&crate::testing::seeded_uniform(weight.dims(), 7, 1.7)?)?;
        vars["entity_classifier.bias"].set(&Tensor::new(&[-100f32, 0., 0., 0.], &Device::Cpu)?)?;
        let sentences = sentences();
        let all: Vec<&SubwordSentence> = sentences.iter().collect();
        let keep_all = DecodeConfig {
            rel_threshold: 0.0,
            no_overlapping: false,
        };
        let chunked = ExtractConfig {
            decode: keep_all,
            span_chunk: 7,
            pair_chunk: 5,
            ..ExtractConfig::default()
        };
        let batched = extract(&model, &all, &chunked, &Device::Cpu)?;
        let whole = ExtractConfig {
            decode: keep_all,
            ..ExtractConfig::default()
        };
        let mut relations = 0;
        for (s, together) in all.iter().zip(&batched) {
            let alone = &extract(&model, &[*s], &whole, &Device::Cpu)?[0];
            let mentions =
                |d: &Decoded| -> Vec<_> { d.entities.iter().map(|e| e.entity).collect() };
            assert_eq!(mentions(alone), mentions(together));
            let triples = |d: &Decoded| -> Vec<RelationTriple> {
                d.relations.iter().map(|r| r.relation).collect()
            };
            assert_eq!(triples(alone), triples(together));
            let scores = |d: &Decoded| -> Vec<f32> {
                let e = d.entities.iter().map(|e| e.score);
                e.chain(d.relations.iter().map(|r| r.score)).collect()
            };
            for (a, b) in scores(alone).iter().zip(scores(together)) {
                assert!((a - b).abs() < 1e-4, "{a} vs {b}");
            }
            relations += together.relations.len();
        }
        assert!(relations > 0, "the comparison should cover relations");
        let too_long = SubwordSentence {
            ids: vec![1; 40],
            words: (1..39).map(|i| i..i + 1).collect(),
        };
        let err = extract(&model, &[&too_long], &whole, &Device::Cpu).unwrap_err();
        assert!(err.to_string().contains("40 sub-words"), "{err}");
        Ok(())
    }

    /// A few AdamW steps on two documents: the loss falls and extraction then finds the gold
    /// entities and relation of a training document.
    #[test]
    fn training_drives_the_loss_down_and_recovers_the_gold() -> Result<()> {
        let (varmap, model) = fixtures::model(fixtures::settings(0.0), 0.0);
        let examples = fixtures::examples();
        let task = RelationLoss {
            model: &model,
            sampling: SamplingConfig::default(),
            device: &Device::Cpu,
        };
        let params = ParamsAdamW {
            lr: 1e-2,
            weight_decay: 0.0,
            ..ParamsAdamW::default()
        };
        let mut opt = AdamW::new(varmap.all_vars(), params)?;
        let mut draw = fixtures::draws(11);
        let rng = DropoutRng::new(5);
        let mut losses = Vec::new();
        for _ in 0..150 {
            let loss = task.loss(&examples, &[0, 1], &mut draw, &Mode::Train(&rng))?;
            losses.push(loss.total.to_scalar::<f32>()?);
            opt.backward_step(&loss.total)?;
        }
        let (first, last) = (losses[0], losses[losses.len() - 1]);
        // The IoU soft targets have entropy: the entity term cannot reach 0.
        assert!(last < 0.2 * first, "{first} -> {last}");
        let gold = &examples[0].document;
        let found = &extract(
            &model,
            &[&examples[0].sentence],
            &ExtractConfig::default(),
            &Device::Cpu,
        )?[0];
        // Decoding lists entities in span order (narrowest first).
        let mut entities: Vec<_> = found.entities.iter().map(|e| e.entity).collect();
        let mut expected = gold.entities.clone();
        entities.sort_by_key(|e| (e.start, e.end));
        expected.sort_by_key(|e| (e.start, e.end));
        assert_eq!(entities, expected);
        let relations: Vec<_> = found.relations.iter().map(|r| r.relation).collect();
        assert_eq!(relations, gold.triples());
        Ok(())
    }
}

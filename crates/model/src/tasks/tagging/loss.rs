//! The tagging task's training loss: token cross-entropy on each word's first sub-word, plus
//! `lambda` times a title/description objective on mean-pooled sentence embeddings (Siskind &
//! Shah's triplet loss in either form, or in-batch InfoNCE), plus `distill` times the cosine
//! distance of each embedding from the base encoder's embedding of the same text ([`anchor`],
//! learning without forgetting), which keeps what the base encoder matches on other catalogs.
use candle_core::{DType, Device, Result, Tensor};

use super::model::NerModel;
use crate::models::mean_pool;
use crate::nn::{
    info_nce_loss, normalize_rows, token_cross_entropy, triplet_loss, Mode, TripletForm,
};
use crate::tasks::{Losses, Task};
use crate::tokenize::{collate_to, pad_rows};

/// A training title, tokenized: its sub-word ids, each word's tag id on its first sub-word
/// (`weights` 1 there, 0 on the other sub-words), and its description's ids (empty when the
/// objective uses none, or the title has no description: it then trains tagging only). The
/// anchors are the base encoder's unit-length embeddings of the title and the description, set
/// by [`anchor`] when the loss distills (empty otherwise).
pub struct TitleExample {
    pub ids: Vec<u32>,
    pub targets: Vec<u32>,
    pub weights: Vec<f32>,
    pub description: Vec<u32>,
    pub title_anchor: Vec<f32>,
    pub description_anchor: Vec<f32>,
}

/// The objective trained beside the tags.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DescriptionLoss {
    /// Tags only: plain fine-tuning, the paper's baseline.
    None,
    /// `lambda * L(cos(t, d+) - cos(t, d-))`, the negative being another item's description.
    Triplet { form: TripletForm, lambda: f64 },
    /// `lambda *` in-batch InfoNCE from titles to their descriptions at `temperature`.
    InfoNce { temperature: f64, lambda: f64 },
}

impl DescriptionLoss {
    pub fn uses_descriptions(&self) -> bool {
        !matches!(self, DescriptionLoss::None)
    }
}

/// The tagging task's [`Task`]: the model being trained and how its loss is made.
pub struct TaggingLoss<'a> {
    pub model: &'a NerModel,
    pub pad_id: u32,
    pub objective: DescriptionLoss,
    /// Weight of the distance from the base encoder's embeddings (0: none; the examples must be
    /// [`anchor`]ed otherwise).
    pub distill: f64,
    /// Least widths of title and description rows (fixed shapes, for benchmarks that compute
    /// every pad as the reference does); 0 pads to the longest row of the batch.
    pub min_widths: (usize, usize),
    pub device: &'a Device,
}

impl Task for TaggingLoss<'_> {
    type Example = TitleExample;

    fn loss_parts(&self) -> &'static [&'static str] {
        &["ner", "aux", "distill"]
    }

    /// With the triplet objective, row i's negative is another row's description: `k` rows on,
    /// cyclically, for a random `k` in 1..len. Batches are shuffled samples of the training
    /// items, so this is a random other item, and its description is encoded once for both
    /// roles, which halves the description work of a step. A batch of one has no other row: its
    /// negative is then a random other item of all `examples`.
    ///
    /// Titles without a description (a user's data may mix them) take no part in the
    /// description objective: it is computed over the described rows of the batch, and is zero
    /// for a batch with fewer than two of them (one, when the batch is that one row), or whose
    /// drawn outside negative has no description.
    fn loss(
        &self,
        examples: &[TitleExample],
        batch: &[usize],
        draw: &mut dyn FnMut(usize) -> usize,
        mode: &Mode,
    ) -> Result<Losses> {
        let device = self.device;
        let rows: Vec<&TitleExample> = batch.iter().map(|&i| &examples[i]).collect();
        let seqs: Vec<&[u32]> = rows.iter().map(|e| e.ids.as_slice()).collect();
        let (ids, mask) = collate_to(&seqs, self.pad_id, self.min_widths.0, device)?;
        let width = ids.dim(1)?;
        let targets: Vec<&[u32]> = rows.iter().map(|e| e.targets.as_slice()).collect();
        let weights: Vec<&[f32]> = rows.iter().map(|e| e.weights.as_slice()).collect();
        let targets = pad_rows(&targets, width, 0u32, device)?;
        let weights = pad_rows(&weights, width, 0f32, device)?;
        // The negatives are drawn before the forward pass, in the order the loop has always
        // drawn them, so a seed gives the same run.
        let mut descriptions: Vec<&[u32]> = Vec::new();
        let mut negatives = Vec::new();
        let described: Vec<usize> = (0..rows.len())
            .filter(|&i| !rows[i].description.is_empty())
            .collect();
        let every_row = described.len() == rows.len();
        let mut objective = self.objective;
        if !objective.uses_descriptions() || described.len() < if every_row { 1 } else { 2 } {
            objective = DescriptionLoss::None;
        } else {
            descriptions.extend(described.iter().map(|&i| rows[i].description.as_slice()));
            if let DescriptionLoss::Triplet { .. } = objective {
                let subset: Vec<usize> = described.iter().map(|&i| batch[i]).collect();
                let (in_batch, outside) = in_batch_negatives(&subset, examples.len(), draw);
                negatives = in_batch;
                match outside.map(|j| examples[j].description.as_slice()) {
                    Some([]) => objective = DescriptionLoss::None,
                    Some(d) => descriptions.push(d),
                    None => {}
                }
            }
        }
        let (hidden, logits) = self.model.forward(&ids, &mask, mode)?;
        let ner = token_cross_entropy(&logits, &targets, &weights)?;
        let rows_described = (!every_row).then_some(described.as_slice());
        let described_rows: Vec<&TitleExample> = described.iter().map(|&i| rows[i]).collect();
        let n = described_rows.len();
        // The weighted description term (none without descriptions) and the distillation term.
        let (aux, distill) = match objective {
            DescriptionLoss::None => (None, self.distill_term(&hidden, &mask, &rows, None)?),
            DescriptionLoss::Triplet { form, lambda } => {
                let (titles, described) =
                    self.embeddings(&hidden, &mask, rows_described, &descriptions, mode)?;
                let negatives: Vec<u32> = negatives.iter().map(|&j| j as u32).collect();
                let negatives = Tensor::new(negatives.as_slice(), device)?;
                let aux = triplet_loss(
                    &titles,
                    &described.narrow(0, 0, n)?,
                    &described.index_select(&negatives, 0)?,
                    form,
                )?;
                let distill = self.distill_term(
                    &hidden,
                    &mask,
                    &rows,
                    Some((&described.narrow(0, 0, n)?, &described_rows)),
                )?;
                (Some((aux, lambda)), distill)
            }
            DescriptionLoss::InfoNce {
                temperature,
                lambda,
            } => {
                let (titles, described) =
                    self.embeddings(&hidden, &mask, rows_described, &descriptions, mode)?;
                let aux = info_nce_loss(&titles, &described, temperature)?;
                let distill =
                    self.distill_term(&hidden, &mask, &rows, Some((&described, &described_rows)))?;
                (Some((aux, lambda)), distill)
            }
        };
        // Without either term the total is the tagging loss itself, no zero term added.
        let mut total = ner.clone();
        if let Some((aux, lambda)) = &aux {
            total = (total + (aux * *lambda)?)?;
        }
        if self.distill > 0.0 {
            total = (total + (&distill * self.distill)?)?;
        }
        let aux = match aux {
            Some((aux, _)) => aux,
            None => Tensor::zeros((), ner.dtype(), device)?,
        };
        Ok(Losses {
            total,
            parts: vec![("ner", ner), ("aux", aux), ("distill", distill)],
        })
    }
}

impl TaggingLoss<'_> {
    /// `distill`'s term: the mean cosine distance of every title of the batch, and of every
    /// description it encoded (`descriptions`: their embeddings and rows, in order), from its
    /// anchor. Zero when the loss does not distill.
    fn distill_term(
        &self,
        hidden: &Tensor,
        mask: &Tensor,
        rows: &[&TitleExample],
        descriptions: Option<(&Tensor, &[&TitleExample])>,
    ) -> Result<Tensor> {
        if self.distill <= 0.0 {
            return Tensor::zeros((), hidden.dtype(), self.device);
        }
        let mut embedded = vec![mean_pool(hidden, mask)?];
        let mut anchors: Vec<&[f32]> = rows.iter().map(|r| r.title_anchor.as_slice()).collect();
        if let Some((described, described_rows)) = descriptions {
            embedded.push(described.clone());
            anchors.extend(
                described_rows
                    .iter()
                    .map(|r| r.description_anchor.as_slice()),
            );
        }
        let embedded = normalize_rows(&Tensor::cat(&embedded, 0)?.to_dtype(DType::F32)?)?;
        let (n, hidden_size) = embedded.dims2()?;
        if let Some(a) = anchors.iter().find(|a| a.len() != hidden_size) {
            candle_core::bail!(
                "distillation anchor of {} values for embeddings of {hidden_size}: the examples \
                 were not anchored",
                a.len()
            );
        }
        let anchors = Tensor::from_vec(anchors.concat(), (n, hidden_size), self.device)?;
        let cosine = (embedded * anchors)?.sum(1)?;
        cosine.affine(-1.0, 1.0)?.mean_all()
    }

    /// The titles' mean-pooled embeddings (of the `rows` given, else all) and the descriptions',
    /// encoded in one pass.
    fn embeddings(
        &self,
        hidden: &Tensor,
        mask: &Tensor,
        rows: Option<&[usize]>,
        descriptions: &[&[u32]],
        mode: &Mode,
    ) -> Result<(Tensor, Tensor)> {
        let mut titles = mean_pool(hidden, mask)?;
        if let Some(rows) = rows {
            let rows: Vec<u32> = rows.iter().map(|&i| i as u32).collect();
            titles = titles.index_select(&Tensor::new(rows.as_slice(), self.device)?, 0)?;
        }
        let (d_ids, d_mask) =
            collate_to(descriptions, self.pad_id, self.min_widths.1, self.device)?;
        Ok((titles, self.model.embed(&d_ids, &d_mask, mode)?))
    }
}

/// Sets each example's anchors ([`TitleExample`]) to `model`'s embeddings of its title and its
/// description (when it has one), computed without dropout in batches of `batch_size`. Called
/// before training, while `model` is still the base encoder, so the anchors are what the base
/// encoder makes of the texts.
pub fn anchor(
    model: &NerModel,
    examples: &mut [TitleExample],
    pad_id: u32,
    batch_size: usize,
    device: &Device,
) -> Result<()> {
    let embed = |seqs: &[&[u32]]| -> Result<Vec<Vec<f32>>> {
        let (ids, mask) = collate_to(seqs, pad_id, 0, device)?;
        let embedded = model.embed(&ids, &mask, &Mode::Infer)?;
        normalize_rows(&embedded.to_dtype(DType::F32)?)?.to_vec2::<f32>()
    };
    for chunk in examples.chunks_mut(batch_size.max(1)) {
        let titles: Vec<&[u32]> = chunk.iter().map(|e| e.ids.as_slice()).collect();
        let title_anchors = embed(&titles)?;
        let described: Vec<usize> = (0..chunk.len())
            .filter(|&i| !chunk[i].description.is_empty())
            .collect();
        let descriptions: Vec<&[u32]> = described
            .iter()
            .map(|&i| chunk[i].description.as_slice())
            .collect();
        let description_anchors = if descriptions.is_empty() {
            Vec::new()
        } else {
            embed(&descriptions)?
        };
        for (example, a) in chunk.iter_mut().zip(title_anchors) {
            example.title_anchor = a;
        }
        for (&i, a) in described.iter().zip(description_anchors) {
            chunk[i].description_anchor = a;
        }
    }
    Ok(())
}

/// Each row's triplet negative, as an index into the batch's descriptions (see
/// [`TaggingLoss`]'s `loss`): for a batch of one, index 1 and the item (of `items`) whose
/// description goes there.
pub fn in_batch_negatives(
    batch: &[usize],
    items: usize,
    draw: &mut dyn FnMut(usize) -> usize,
) -> (Vec<usize>, Option<usize>) {
    let n = batch.len();
    if n == 1 {
        let mut j = draw(items - 1);
        if j >= batch[0] {
            j += 1;
        }
        return (vec![1], Some(j));
    }
    (rows_on(n, 1 + draw(n - 1)), None)
}

/// Row i's negative is row `(i + k) % n`: for 0 < k < n, another row of the batch.
pub fn rows_on(n: usize, k: usize) -> Vec<usize> {
    (0..n).map(|i| (i + k) % n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;
    use candle_nn::{VarBuilder, VarMap};
    use multitag_core::LabelMap;

    fn example(ids: &[u32], description: &[u32]) -> TitleExample {
        TitleExample {
            ids: ids.to_vec(),
            targets: vec![0; ids.len()],
            weights: vec![1.0; ids.len()],
            description: description.to_vec(),
            title_anchor: Vec::new(),
            description_anchor: Vec::new(),
        }
    }

    /// A title without a description trains tagging only: the description objective of a batch
    /// is that of its described rows alone, and zero with fewer than two of them.
    #[test]
    fn titles_without_descriptions_train_tagging_only() -> Result<()> {
        let dev = Device::Cpu;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
        let config = super::super::model::tests::tiny_config(0.0);
        let model = NerModel::load(&config, LabelMap::from_entity_types(&["T"]), vb)?;
        let examples = [
            example(&[1, 5, 6, 2], &[1, 10, 11, 2]),
            example(&[1, 7, 2], &[]),
            example(&[1, 8, 9, 2], &[1, 12, 2]),
        ];
        let task = TaggingLoss {
            model: &model,
            pad_id: 0,
            objective: DescriptionLoss::InfoNce {
                temperature: 0.1,
                lambda: 1.0,
            },
            distill: 0.0,
            min_widths: (0, 0),
            device: &dev,
        };
        let aux = |batch: &[usize]| -> Result<f32> {
            let mut draw = draws(3);
            let losses = task.loss(&examples, batch, &mut draw, &Mode::Infer)?;
            losses.parts[1].1.to_scalar::<f32>()
        };
        let mixed = aux(&[0, 1, 2])?;
        assert!(mixed > 0.0);
        assert!((mixed - aux(&[0, 2])?).abs() < 1e-6, "{mixed}");
        assert_eq!(aux(&[0, 1])?, 0.0);
        Ok(())
    }

    /// Anchored to the model itself, the distillation term is zero (each text is at its own
    /// embedding); once the weights move, it is positive, and it counts the titles of rows
    /// without a description as well as the described rows' titles and descriptions.
    #[test]
    fn distillation_measures_the_distance_from_the_anchors() -> Result<()> {
        let dev = Device::Cpu;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
        let config = super::super::model::tests::tiny_config(0.0);
        let model = NerModel::load(&config, LabelMap::from_entity_types(&["T"]), vb)?;
        let mut examples = vec![
            example(&[1, 5, 6, 2], &[1, 10, 11, 2]),
            example(&[1, 7, 2], &[]),
            example(&[1, 8, 9, 2], &[1, 12, 2]),
        ];
        anchor(&model, &mut examples, 0, 2, &dev)?;
        assert!(examples[1].description_anchor.is_empty());
        assert_eq!(examples[2].description_anchor.len(), config.hidden_size);
        let mut task = TaggingLoss {
            model: &model,
            pad_id: 0,
            objective: DescriptionLoss::InfoNce {
                temperature: 0.1,
                lambda: 1.0,
            },
            distill: 1.0,
            min_widths: (0, 0),
            device: &dev,
        };
        let distill = |task: &TaggingLoss, batch: &[usize]| -> Result<f32> {
            let losses = task.loss(&examples, batch, &mut draws(3), &Mode::Infer)?;
            assert_eq!(losses.parts[2].0, "distill");
            losses.parts[2].1.to_scalar::<f32>()
        };
        assert!(distill(&task, &[0, 1, 2])?.abs() < 1e-5);
        task.objective = DescriptionLoss::None;
        assert!(distill(&task, &[1])?.abs() < 1e-5);
        // Move every weight: each text's embedding leaves its anchor.
        for var in varmap.all_vars() {
            let moved = (var.as_tensor() * 0.5)?.affine(1.0, 0.01)?;
            var.set(&moved)?;
        }
        assert!(distill(&task, &[1])? > 1e-4);
        task.objective = DescriptionLoss::InfoNce {
            temperature: 0.1,
            lambda: 1.0,
        };
        assert!(distill(&task, &[0, 1, 2])? > 1e-4);
        Ok(())
    }

    /// A splitmix64 stream for the tests' draws.
    fn draws(seed: u64) -> impl FnMut(usize) -> usize {
        let mut rng = multitag_core::SplitMix64::new(seed);
        move |n| (rng.next_u64() % n as u64) as usize
    }

    #[test]
    fn in_batch_negatives_are_other_rows_and_vary() {
        let mut draw = draws(1);
        let batch: Vec<usize> = (10..42).collect();
        let mut shifts = std::collections::HashSet::new();
        for _ in 0..50 {
            let (negatives, extra) = in_batch_negatives(&batch, 100, &mut draw);
            assert_eq!(extra, None);
            assert_eq!(negatives.len(), batch.len());
            for (i, &j) in negatives.iter().enumerate() {
                assert!(j < batch.len() && j != i, "row {i} got negative {j}");
            }
            shifts.insert(negatives[0]);
        }
        assert!(shifts.len() > 10, "the shift should be random: {shifts:?}");
    }

    #[test]
    fn a_batch_of_one_gets_another_item() {
        let mut draw = draws(2);
        for _ in 0..50 {
            let (negatives, extra) = in_batch_negatives(&[3], 5, &mut draw);
            assert_eq!(negatives, vec![1]);
            let item = extra.expect("an item from outside the batch");
            assert!(item < 5 && item != 3, "item {item}");
        }
    }
}

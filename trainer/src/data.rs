//! The edge between files and the pure readers of multitag-core: read the catalog, derive the
//! labels, assign the split, and join the committed gold labels with the catalog text.
//!
//! Skipped catalog rows: every command that reads the catalog (`train`, `eval`, `export`, `label`,
//! `bench`, `compare`) prints the first [`SHOWN_SKIPPED`] skipped rows, then always one line with
//! the total. The full list is JSONL (`{"source","line","field","message"}`, one entry per skipped
//! row or damaged line, in line order): `trainer label` always writes it, to `--skipped FILE`
//! (default: beside its `--out`, `labeled.jsonl` -> `labeled.skipped.jsonl`), and the other
//! commands' total line names that command when there are more than the ones shown. One place for
//! the list keeps it simple: skipping depends only on the catalog, never on the command or seed.
//! The catalog is read as bytes so that a line that is not UTF-8 skips only its row, named with its
//! line and byte column (docs/damaged-input.md).
use std::path::Path;

use anyhow::{bail, Context, Result};
use multitag_core::{
    catalog::read_catalog_with, gold_tags, overlap::title_key, read_gold_lines, read_labeled_bytes,
    split_of, CatalogColumns, DataError, LabelMap, LabeledRecord, LabeledText, Labeler, SeenTitles,
    Split, ENTITY_TYPES,
};

use crate::model_dir::{ModelDir, TrainedSplit};
use crate::output::write_atomic;

/// The split of the paper: 30% of items held out for test, and 10% of the rest for early stopping.
/// Each item's split follows from its id and the seed (`multitag_core::split_of`); the items of
/// the committed gold set ([`crate::settings::default_gold`]) are always test items, since they
/// were drawn from the test split and must never be trained on.
pub const TEST_FRACTION: f64 = 0.3;
pub const DEV_FRACTION_OF_TRAIN: f64 = 0.1;

/// How many skipped rows are printed one by one (the total is always printed).
pub const SHOWN_SKIPPED: usize = 10;

/// The name of the split rule, recorded with every trained model (`training.json`'s `split`) so
/// that evaluating it on another split, whose test items it may have trained on, is refused.
pub const SPLIT_RULE: &str = "id-hash-v1";

/// The split rule of labeled data given as `--train`, `--dev` and `--test` files.
pub const FILES_RULE: &str = "files";

pub struct Dataset {
    pub records: Vec<LabeledRecord>,
    /// How the items were split, as `training.json` records it (`split`).
    pub split: serde_json::Value,
    /// The tags a model of this data predicts: the catalog's four types, or every type in a
    /// labeled file.
    pub labels: LabelMap,
    /// Skipped rows and damaged lines of the catalog (all listed by `trainer label --skipped`),
    /// or skipped records of labeled files.
    pub skipped_rows: usize,
}

impl Dataset {
    pub fn split(&self, split: Split) -> Vec<&LabeledRecord> {
        self.records.iter().filter(|r| r.split == split).collect()
    }

    /// The titles of the training and dev items: held-out figures are also given without them.
    pub fn seen_titles(&self) -> SeenTitles {
        SeenTitles::new(self.records.iter().filter(|r| r.split != Split::Test))
    }

    /// How the items were split, as `training.json` records it.
    pub fn split_record(&self) -> serde_json::Value {
        self.split.clone()
    }

    /// Refuses to score the trained model `model` on this dataset's held-out items when it
    /// was trained on another split (another rule or seed): some of them would be its training
    /// items. Models trained before the split was recorded get a warning. A test file the user
    /// names (`--test`) is taken as held out: only they know what the model was trained on.
    pub fn check_held_out(&self, model: &ModelDir) -> Result<()> {
        if self.split["rule"] == FILES_RULE {
            return Ok(());
        }
        let path = model.path.join("training.json");
        match &model.split {
            // An export, or a base encoder: nothing recorded to check against.
            TrainedSplit::NotRecorded => {}
            TrainedSplit::Unknown => eprintln!(
                "warning: {} does not record its split (trained before splits were by id): if it \
                 was trained on the older position-based split, about half of these test items \
                 were training items and its scores are flattered; train it again",
                path.display()
            ),
            TrainedSplit::Recorded(split) if *split != self.split_record() => bail!(
                "{}: field `split`: the model was trained on split {split}, this evaluation uses \
                 {}; part of this test set was its training data. Pass the model's --split-seed, \
                 or train it again",
                path.display(),
                self.split_record()
            ),
            TrainedSplit::Recorded(_) => {}
        }
        Ok(())
    }
}

/// Reads the catalog, labels every title by the distant-supervision rules and assigns splits.
pub fn load_dataset(catalog: &Path, columns: &CatalogColumns, split_seed: u64) -> Result<Dataset> {
    load_dataset_listing_skipped(catalog, columns, split_seed, None)
}

/// [`load_dataset`], also writing every skipped row as JSONL to `skipped_list` when given (an
/// empty file when none was skipped, so an old list never outlives its catalog).
pub fn load_dataset_listing_skipped(
    catalog: &Path,
    columns: &CatalogColumns,
    split_seed: u64,
    skipped_list: Option<&Path>,
) -> Result<Dataset> {
    let name = catalog.display().to_string();
    let bytes = std::fs::read(catalog).with_context(|| {
        format!("cannot read the catalog {name} (set --catalog or MULTITAG_DATA)")
    })?;
    let read = read_catalog_with(&name, &bytes, columns)?;
    report_skipped(&name, read.items.len(), &read.skipped, skipped_list)?;
    if read.items.is_empty() {
        bail!("{name}: no usable rows");
    }
    let labeler = Labeler::fit(&read.items);
    let gold_ids = held_out_ids(&crate::settings::default_gold())?;
    let records = read
        .items
        .iter()
        .map(|item| {
            let split = if gold_ids.contains(item.id.as_str()) {
                Split::Test
            } else {
                split_of(&item.id, split_seed, TEST_FRACTION, DEV_FRACTION_OF_TRAIN)
            };
            LabeledRecord::new(item, labeler.label(item), split)
        })
        .collect();
    Ok(Dataset {
        records,
        split: serde_json::json!({"rule": SPLIT_RULE, "seed": split_seed}),
        labels: LabelMap::from_entity_types(&ENTITY_TYPES),
        skipped_rows: read.skipped.len(),
    })
}

/// A user's labeled titles ([`multitag_core::labeled`]): one file split by seed, or the split
/// given by files.
pub enum LabeledFiles<'a> {
    /// Split like the catalog: by id, or by the title's words for records without one.
    Seeded(&'a Path),
    /// The training, dev and test files; without a dev file, 10% of training is carved out by
    /// seed for picking the epoch.
    Given {
        train: Option<&'a Path>,
        dev: Option<&'a Path>,
        test: Option<&'a Path>,
    },
}

/// Reads labeled titles, skipping (and reporting) bad records; the label set is every entity type
/// in the files.
pub fn load_labeled(files: LabeledFiles, split_seed: u64) -> Result<Dataset> {
    let mut records = Vec::new();
    let mut skipped = 0;
    let split = match files {
        LabeledFiles::Seeded(path) => {
            for (text, key) in read_labeled_file(path, &mut skipped)? {
                let s = split_of(&key, split_seed, TEST_FRACTION, DEV_FRACTION_OF_TRAIN);
                records.push(labeled_record(text, path, s));
            }
            serde_json::json!({"rule": SPLIT_RULE, "seed": split_seed})
        }
        LabeledFiles::Given { train, dev, test } => {
            let files = [(train, "train"), (dev, "dev"), (test, "test")];
            for (path, role) in files.iter().filter_map(|(p, r)| Some((p.as_ref()?, r))) {
                for (text, key) in read_labeled_file(path, &mut skipped)? {
                    let s = match *role {
                        "test" => Split::Test,
                        "dev" => Split::Dev,
                        _ if dev.is_some() => Split::Train,
                        _ => split_of(&key, split_seed, 0.0, DEV_FRACTION_OF_TRAIN),
                    };
                    records.push(labeled_record(text, path, s));
                }
            }
            let name = |p: Option<&Path>| p.map(|p| p.display().to_string());
            serde_json::json!({
                "rule": FILES_RULE,
                "train": name(train),
                "dev": name(dev).or(train.map(|_| format!("10% of train, seed {split_seed}"))),
                "test": name(test),
            })
        }
    };
    let labels = LabelMap::from_tag_sequences(records.iter().map(|r| r.tags.as_slice()));
    if labels.len() < 2 {
        bail!("no entity tags (B-/I-) in the labeled data: nothing to learn or score");
    }
    Ok(Dataset {
        records,
        split,
        labels,
        skipped_rows: skipped,
    })
}

/// The records of one labeled file and each one's split key (its id, or its title's words);
/// skipped records are reported as the catalog's rows are.
fn read_labeled_file(path: &Path, skipped: &mut usize) -> Result<Vec<(LabeledText, String)>> {
    let name = path.display().to_string();
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read the labeled data {name}"))?;
    let read = read_labeled_bytes(&name, &bytes)?;
    // All of them: they are the user's own records, each to be fixed.
    for problem in &read.skipped {
        eprintln!("skipped record: {problem}");
    }
    eprintln!(
        "{name}: read {} labeled records, skipped {}",
        read.records.len(),
        read.skipped.len()
    );
    *skipped += read.skipped.len();
    Ok(read
        .records
        .into_iter()
        .map(|r| {
            let key = r.id.clone().unwrap_or_else(|| title_key(&r.words));
            (r, key)
        })
        .collect())
}

/// A labeled title as the rest of the trainer takes it; a record without an id is named by its
/// file and line.
fn labeled_record(text: LabeledText, path: &Path, split: Split) -> LabeledRecord {
    let name = path.file_name().map_or(path.display().to_string(), |n| {
        n.to_string_lossy().into_owned()
    });
    LabeledRecord {
        id: text.id.unwrap_or_else(|| format!("{name}:{}", text.line)),
        title: text.title,
        description: text.description,
        words: text.words,
        offsets: text.offsets,
        tags: text.tags,
        split,
    }
}

/// Prints the first [`SHOWN_SKIPPED`] problems and the total, writing the whole list when asked.
fn report_skipped(
    catalog: &str,
    items: usize,
    skipped: &[DataError],
    skipped_list: Option<&Path>,
) -> Result<()> {
    for problem in skipped.iter().take(SHOWN_SKIPPED) {
        eprintln!("skipped row: {problem}");
    }
    let total = skipped.len();
    let summary = format!("{catalog}: read {items} items, skipped {total} rows or damaged lines");
    if let Some(path) = skipped_list {
        write_skipped_list(path, skipped)?;
        if total > 0 {
            eprintln!("{summary}; all {total} listed in {}", path.display());
            return Ok(());
        }
    } else if total > SHOWN_SKIPPED {
        eprintln!(
            "{summary} (the first {SHOWN_SKIPPED} above); \
             `trainer label --catalog {catalog} --skipped FILE` lists them all"
        );
        return Ok(());
    }
    eprintln!("{summary}");
    Ok(())
}

/// Writes `skipped` as JSONL, one `{"source","line","field","message"}` object per line.
fn write_skipped_list(path: &Path, skipped: &[DataError]) -> Result<()> {
    let mut jsonl = String::new();
    for e in skipped {
        let entry = serde_json::json!({
            "source": e.source_name,
            "line": e.line,
            "field": e.field,
            "message": e.message,
        });
        jsonl.push_str(&entry.to_string());
        jsonl.push('\n');
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    write_atomic(path, jsonl.as_bytes())
        .with_context(|| format!("writing the skipped-row list {}", path.display()))
}

/// The ids of the gold set at `path` (none when it does not exist): items always held out.
fn held_out_ids(path: &Path) -> Result<std::collections::HashSet<String>> {
    if !path.is_file() {
        return Ok(Default::default());
    }
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read gold labels {source}"))?;
    Ok(read_gold_lines(&source, &text)?
        .into_iter()
        .map(|(_, line)| line.id)
        .collect())
}

/// The gold test set: committed (id, offsets, labels) joined with the catalog's titles. Each gold
/// record keeps the derived labels' split, and gold items must come from the test split (an item
/// in another split was trained on, and would flatter the gold score).
pub fn load_gold(path: &Path, dataset: &Dataset) -> Result<Vec<LabeledRecord>> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read gold labels {source}"))?;
    let lines = read_gold_lines(&source, &text)?;
    let by_id: std::collections::HashMap<&str, &LabeledRecord> =
        dataset.records.iter().map(|r| (r.id.as_str(), r)).collect();
    let mut gold = Vec::with_capacity(lines.len());
    for (line_number, line) in &lines {
        let Some(record) = by_id.get(line.id.as_str()) else {
            bail!(
                "{source}:{line_number}: field `id`: item {} is not in the catalog",
                line.id
            );
        };
        if record.split != Split::Test {
            bail!(
                "{source}:{line_number}: field `id`: item {} is in the {:?} split, not test; gold \
                 items must be held out of training (the default gold set always is)",
                line.id,
                record.split
            );
        }
        let tags = gold_tags(&source, *line_number, line, &record.title)?;
        let mut record = (*record).clone();
        record.tags = tags;
        gold.push(record);
    }
    Ok(gold)
}

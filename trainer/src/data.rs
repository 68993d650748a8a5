//! The edge between files and the pure readers of multitag-core: read the catalog, derive the
//! labels, assign the split, and join the committed gold labels with the catalog text.
use std::path::Path;

use anyhow::{bail, Context, Result};
use multitag_core::{
    assign_splits, gold_tags, read_catalog, read_gold_lines, LabeledRecord, Labeler, Split,
};

/// The split of the paper: 30% of items held out for test, and 10% of the rest for early stopping.
pub const TEST_FRACTION: f64 = 0.3;
pub const DEV_FRACTION_OF_TRAIN: f64 = 0.1;

pub struct Dataset {
    pub records: Vec<LabeledRecord>,
    pub skipped_rows: usize,
}

impl Dataset {
    pub fn split(&self, split: Split) -> Vec<&LabeledRecord> {
        self.records.iter().filter(|r| r.split == split).collect()
    }
}

/// Reads the catalog, labels every title by the distant-supervision rules and assigns splits.
pub fn load_dataset(catalog: &Path, split_seed: u64) -> Result<Dataset> {
    let text = std::fs::read_to_string(catalog).with_context(|| {
        format!(
            "cannot read the catalog {} (set --catalog or MULTITAG_DATA)",
            catalog.display()
        )
    })?;
    let read = read_catalog(&catalog.display().to_string(), &text)?;
    for problem in read.skipped.iter().take(10) {
        eprintln!("skipped row: {problem}");
    }
    if read.items.is_empty() {
        bail!("{}: no usable rows", catalog.display());
    }
    let labeler = Labeler::fit(&read.items);
    let splits = assign_splits(
        read.items.len(),
        split_seed,
        TEST_FRACTION,
        DEV_FRACTION_OF_TRAIN,
    );
    let records = read
        .items
        .iter()
        .zip(splits)
        .map(|(item, split)| LabeledRecord::new(item, labeler.label(item), split))
        .collect();
    Ok(Dataset {
        records,
        skipped_rows: read.skipped.len(),
    })
}

/// The gold test set: committed (id, offsets, labels) joined with the catalog's titles. Each gold
/// record keeps the derived labels' split, and gold items must come from the test split.
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
        let tags = gold_tags(&source, *line_number, line, &record.title)?;
        let mut record = (*record).clone();
        record.tags = tags;
        gold.push(record);
    }
    Ok(gold)
}

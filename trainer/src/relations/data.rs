//! The files of a relation extraction dataset in SpERT's JSON format: a types file and the
//! training, dev and test documents. Given one by one (`--train`, `--dev`, `--test`, `--types`)
//! or as a directory (`--data DIR`) holding exactly one file of each kind, found by the endings
//! SpERT's datasets use: `*_types.json`, `*_train.json`, `*_dev.json`, `*_test.json`
//! (`conll04_train_dev.json`, SpERT's train+dev file, ends differently and is not picked up). A
//! directory with several candidates of a kind (ADE's ten folds) is an error that lists them.
//!
//! Documents a reader skips (a bad entity, a relation to a missing entity) are reported with the
//! file, the document's index and the field; the others are kept.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use multitag_core::relations::{read_documents, read_types, Document, TypeSet};

/// Where each part of a dataset is, as given on the command line.
#[derive(Debug, Clone, Default)]
pub struct RelationFiles {
    pub data: Option<PathBuf>,
    pub train: Option<PathBuf>,
    pub dev: Option<PathBuf>,
    pub test: Option<PathBuf>,
    pub types: Option<PathBuf>,
}

/// A dataset's types and documents; a part not given is empty.
#[derive(Debug)]
pub struct RelationData {
    pub types: TypeSet,
    pub train: Vec<Document>,
    pub dev: Vec<Document>,
    pub test: Vec<Document>,
    /// The files read, by part, as `training.json` records them.
    pub files: serde_json::Value,
}

/// SpERT's train+dev file (`conll04_train_dev.json`): it ends in `_dev.json` but is not dev.
const TRAIN_DEV: &str = "_train_dev.json";

/// The one file in `dir` whose name ends in `ending`; `None` when there is none.
fn find_one(dir: &Path, ending: &str) -> Result<Option<PathBuf>> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading the directory {}", dir.display()))?
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(ending) && !n.ends_with(TRAIN_DEV))
        })
        .collect();
    found.sort();
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        n => {
            let names: Vec<String> = found.iter().map(|p| p.display().to_string()).collect();
            bail!(
                "{}: {n} files end in `{ending}` ({}); name the one to use with --train, --dev, \
                 --test and --types",
                dir.display(),
                names.join(", ")
            )
        }
    }
}

impl RelationFiles {
    /// The test file: `--test`, or the one `*_test.json` of `--data`.
    pub fn test_file(&self) -> Result<Option<PathBuf>> {
        match (&self.test, &self.data) {
            (Some(test), _) => Ok(Some(test.clone())),
            (None, Some(dir)) if dir.is_dir() => find_one(dir, "_test.json"),
            _ => Ok(None),
        }
    }

    /// The files, those of `--data DIR` filling the parts not given one by one.
    fn resolve(&self) -> Result<RelationFiles> {
        let mut files = self.clone();
        if let Some(dir) = &self.data {
            if !dir.is_dir() {
                bail!(
                    "{}: with --task relations, --data is a directory of SpERT JSON files \
                     (*_types.json, *_train.json, *_dev.json, *_test.json)",
                    dir.display()
                );
            }
            for (slot, ending) in [
                (&mut files.train, "_train.json"),
                (&mut files.dev, "_dev.json"),
                (&mut files.test, "_test.json"),
                (&mut files.types, "_types.json"),
            ] {
                if slot.is_none() {
                    *slot = find_one(dir, ending)?;
                }
            }
        }
        Ok(files)
    }

    /// Reads the types and the documents of each part given; `need_train` / `need_test` make a
    /// missing part an error.
    pub fn read(&self, need_train: bool, need_test: bool) -> Result<RelationData> {
        let files = self.resolve()?;
        let Some(types_file) = files.types.clone() else {
            bail!(
                "relation data needs a types file: --types FILE, or --data DIR with *_types.json"
            );
        };
        if need_train && files.train.is_none() {
            bail!("no training documents: --train FILE, or --data DIR with *_train.json");
        }
        if need_test && files.test.is_none() {
            bail!("no test documents: --test FILE, or --data DIR with *_test.json");
        }
        let text = std::fs::read_to_string(&types_file)
            .with_context(|| format!("reading {}", types_file.display()))?;
        let types = read_types(&types_file.display().to_string(), &text)?;
        let part = |path: &Option<PathBuf>| -> Result<Vec<Document>> {
            match path {
                Some(p) => read_part(p, &types),
                None => Ok(Vec::new()),
            }
        };
        let name = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        Ok(RelationData {
            train: part(&files.train)?,
            dev: part(&files.dev)?,
            test: part(&files.test)?,
            files: serde_json::json!({
                "types": types_file.display().to_string(),
                "train": name(&files.train),
                "dev": name(&files.dev),
                "test": name(&files.test),
            }),
            types,
        })
    }
}

/// The documents of one file; skipped ones are printed (the first few, then the count).
pub fn read_part(path: &Path, types: &TypeSet) -> Result<Vec<Document>> {
    const SHOWN: usize = 5;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let read = read_documents(&path.display().to_string(), &text, types)?;
    for problem in read.skipped.iter().take(SHOWN) {
        eprintln!("skipped {problem}");
    }
    eprintln!(
        "{}: read {} documents, skipped {}",
        path.display(),
        read.documents.len(),
        read.skipped.len()
    );
    Ok(read.documents)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TYPES: &str =
        r#"{"entities": {"Peop": {}, "Org": {}}, "relations": {"Work_For": {"symmetric": false}}}"#;
    const DOCS: &str = r#"[{"tokens": ["Ann", "works", "for", "Acme"],
        "entities": [{"type": "Peop", "start": 0, "end": 1}, {"type": "Org", "start": 3, "end": 4}],
        "relations": [{"type": "Work_For", "head": 0, "tail": 1}]},
        {"tokens": ["Bo"], "entities": [{"type": "Nobody", "start": 0, "end": 1}], "relations": []}]"#;

    #[test]
    fn a_directory_gives_each_part_once_and_several_candidates_are_an_error() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("multitag-relfiles-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("x_types.json"), TYPES)?;
        std::fs::write(dir.join("x_train.json"), DOCS)?;
        std::fs::write(dir.join("x_train_dev.json"), DOCS)?;
        std::fs::write(dir.join("x_test.json"), DOCS)?;
        std::fs::write(dir.join("x_dev.json"), DOCS)?;
        let files = RelationFiles {
            data: Some(dir.clone()),
            ..RelationFiles::default()
        };
        let data = files.read(true, true)?;
        // The second document names an unknown type: skipped, the first kept.
        assert_eq!(
            (data.train.len(), data.dev.len(), data.test.len()),
            (1, 1, 1)
        );
        assert_eq!(data.types.relations[0].name, "Work_For");

        std::fs::write(dir.join("y_test.json"), DOCS)?;
        let err = files.read(true, true).unwrap_err().to_string();
        assert!(err.contains("2 files end in `_test.json`"), "{err}");
        let named = RelationFiles {
            test: Some(dir.join("y_test.json")),
            ..files
        };
        assert_eq!(named.read(true, true)?.test.len(), 1);
        let err = RelationFiles::default()
            .read(false, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("types file"), "{err}");
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}

//! The files of a relation extraction dataset in SpERT's JSON format: a types file and the
//! training, dev and test documents. Given one by one (`--train`, `--dev`, `--test`, `--types`)
//! or as a directory (`--data DIR`) holding exactly one file of each kind, found by the endings
//! SpERT's datasets use: `*_types.json`, `*_train.json`, `*_dev.json`, `*_test.json`
//! (`conll04_train_dev.json`, SpERT's train+dev file, ends differently and is not picked up). A
//! directory with several candidates of a kind is an error that lists them.
//!
//! Cross-validation folds are named as SpERT's ADE names them: with a fold `K` (`--fold K`), the
//! training and test files of `--data DIR` are the ones ending in `_split_K_train.json` and
//! `_split_K_test.json` (a `_split_K_dev.json` is used when there is one), the types file the one
//! `*_types.json`. [`fold_numbers`] lists the folds a directory holds, [`parse_folds`] reads
//! `--folds`.
//!
//! Documents a reader skips (a bad entity, a relation to a missing entity) are reported with the
//! file, the document's index and the field; the others are kept.
use std::path::{Path, PathBuf};

use std::collections::BTreeSet;

use anyhow::{anyhow, bail, Context, Result};
use multitag_core::relations::{read_documents, read_types, Document, TypeSet};

/// Where each part of a dataset is, as given on the command line.
#[derive(Debug, Clone, Default)]
pub struct RelationFiles {
    pub data: Option<PathBuf>,
    pub train: Option<PathBuf>,
    pub dev: Option<PathBuf>,
    pub test: Option<PathBuf>,
    pub types: Option<PathBuf>,
    /// A cross-validation fold of `data` (see the module docs).
    pub fold: Option<usize>,
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
            let folds = fold_numbers(dir)?;
            let hint = if folds.is_empty() {
                String::new()
            } else {
                format!(
                    ", or a cross-validation fold with --fold K ({} folds here: *_split_K_train.json)",
                    folds.len()
                )
            };
            bail!(
                "{}: {n} files end in `{ending}` ({}); name the one to use with --train, --dev, \
                 --test and --types{hint}",
                dir.display(),
                names.join(", ")
            )
        }
    }
}

/// The folds `dir` holds: every `K` with both a `*_split_K_train.json` and a
/// `*_split_K_test.json`, in order.
pub fn fold_numbers(dir: &Path) -> Result<Vec<usize>> {
    let names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("reading the directory {}", dir.display()))?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .collect();
    let folds_of = |part: &str| -> BTreeSet<usize> {
        names
            .iter()
            .filter_map(|name| {
                name.strip_suffix(part)?
                    .rsplit_once("_split_")?
                    .1
                    .parse()
                    .ok()
            })
            .collect()
    };
    let test = folds_of("_test.json");
    Ok(folds_of("_train.json")
        .intersection(&test)
        .copied()
        .collect())
}

/// `--folds`: `all` (every fold `dir` holds), a range `A-B`, or a list `A,B,...`.
pub fn parse_folds(spec: &str, dir: &Path) -> Result<Vec<usize>> {
    let number = |text: &str| -> Result<usize> {
        text.trim()
            .parse()
            .map_err(|_| anyhow!("--folds {spec}: `{text}` is not a fold number"))
    };
    let folds: Vec<usize> = match (spec.trim(), spec.split_once('-')) {
        ("all", _) => fold_numbers(dir)?,
        (_, Some((first, last))) => (number(first)?..=number(last)?).collect(),
        (list, None) => list.split(',').map(number).collect::<Result<_>>()?,
    };
    if folds.is_empty() {
        bail!(
            "--folds {spec}: no folds (in {}: {:?})",
            dir.display(),
            fold_numbers(dir)?
        );
    }
    Ok(folds)
}

impl RelationFiles {
    /// The test file: `--test`, or the one `*_test.json` of `--data`.
    pub fn test_file(&self) -> Result<Option<PathBuf>> {
        match (&self.test, &self.data) {
            (Some(test), _) => Ok(Some(test.clone())),
            (None, Some(dir)) if dir.is_dir() => find_one(dir, &self.ending("test")),
            _ => Ok(None),
        }
    }

    /// How the name of a part's file ends: `_PART.json`, or `_split_K_PART.json` in fold `K`.
    fn ending(&self, part: &str) -> String {
        match self.fold {
            Some(k) => format!("_split_{k}_{part}.json"),
            None => format!("_{part}.json"),
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
                (&mut files.train, self.ending("train")),
                (&mut files.dev, self.ending("dev")),
                (&mut files.test, self.ending("test")),
                (&mut files.types, "_types.json".to_string()),
            ] {
                if slot.is_none() {
                    *slot = find_one(dir, &ending)?;
                }
            }
            if let Some(k) = self.fold {
                if files.train.is_none() && files.test.is_none() {
                    bail!(
                        "{}: no fold {k} (no *_split_{k}_train.json or *_split_{k}_test.json); \
                         folds here: {:?}",
                        dir.display(),
                        fold_numbers(dir)?
                    );
                }
            }
        } else if self.fold.is_some() {
            bail!("--fold picks a fold's files in a directory: give it with --data DIR");
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

    /// A fresh, empty directory of this test process, `name` telling the tests apart.
    fn empty_dir(name: &str) -> Result<PathBuf> {
        let dir = std::env::temp_dir().join(format!("multitag-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    #[test]
    fn a_directory_gives_each_part_once_and_several_candidates_are_an_error() -> Result<()> {
        let dir = empty_dir("relfiles")?;
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

    #[test]
    fn a_fold_picks_its_own_files_of_a_cross_validation_directory() -> Result<()> {
        let dir = empty_dir("relfolds")?;
        std::fs::write(dir.join("x_types.json"), TYPES)?;
        // Fold 1's test file holds two readable documents, the others one: which file was read
        // shows in the counts. Fold 11 must not be taken for fold 1, and fold 2 has no test file.
        let two = DOCS.replace("\"Nobody\"", "\"Peop\"");
        for (name, text) in [
            ("x_split_0_train.json", DOCS),
            ("x_split_0_test.json", DOCS),
            ("x_split_1_train.json", DOCS),
            ("x_split_1_test.json", two.as_str()),
            ("x_split_11_train.json", DOCS),
            ("x_split_11_test.json", DOCS),
            ("x_split_2_train.json", DOCS),
        ] {
            std::fs::write(dir.join(name), text)?;
        }
        assert_eq!(fold_numbers(&dir)?, vec![0, 1, 11]);
        let fold = |k: Option<usize>| RelationFiles {
            data: Some(dir.clone()),
            fold: k,
            ..RelationFiles::default()
        };
        let data = fold(Some(1)).read(true, true)?;
        assert_eq!((data.train.len(), data.test.len()), (1, 2));
        assert_eq!(
            data.files["test"].as_str(),
            Some(dir.join("x_split_1_test.json").to_str().unwrap())
        );
        assert_eq!(
            fold(Some(1)).test_file()?,
            Some(dir.join("x_split_1_test.json"))
        );
        assert_eq!(fold(Some(0)).read(true, true)?.test.len(), 1);
        let err = fold(None).read(true, true).unwrap_err().to_string();
        assert!(err.contains("--fold K (3 folds here"), "{err}");
        let err = fold(Some(2)).read(true, true).unwrap_err().to_string();
        assert!(err.contains("no test documents"), "{err}");
        let err = fold(Some(5)).read(true, true).unwrap_err().to_string();
        assert!(
            err.contains("no fold 5") && err.contains("[0, 1, 11]"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    #[test]
    fn folds_are_a_range_a_list_or_all_a_directory_holds() -> Result<()> {
        let dir = empty_dir("folds")?;
        for k in [0, 2] {
            std::fs::write(dir.join(format!("d_split_{k}_train.json")), "[]")?;
            std::fs::write(dir.join(format!("d_split_{k}_test.json")), "[]")?;
        }
        assert_eq!(parse_folds("0-3", &dir)?, vec![0, 1, 2, 3]);
        assert_eq!(parse_folds("2, 0", &dir)?, vec![2, 0]);
        assert_eq!(parse_folds("all", &dir)?, vec![0, 2]);
        let err = parse_folds("1-x", &dir).unwrap_err().to_string();
        assert!(err.contains("`x` is not a fold number"), "{err}");
        let err = parse_folds("3-1", &dir).unwrap_err().to_string();
        assert!(err.contains("no folds") && err.contains("[0, 2]"), "{err}");
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}

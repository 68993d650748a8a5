//! `trainer export`: a trained model directory to the directory the browser app loads.
//!
//! ```text
//! <out>/model.gguf      every tensor of the trained model, stored by the rule of
//!                       multitag_model::gguf (f32 vectors; matrices as the requested type,
//!                       falling back per tensor when a row does not divide into its blocks), with
//!                       the config, labels, task, requested type and source directory in the
//!                       metadata, and SHA-256 checksums of the tensors, labels and config that
//!                       every load verifies (multitag_model::gguf)
//! <out>/tokenizer.json  copied from the model directory
//! <out>/examples.json   a few held-out TEST-split items (id, title, description) for the
//!                       browser's similarity view; `[]` (with a warning) if the catalog is unreadable
//! <out>/manifest.json   {task, quant, files: [{name, bytes}], source, labels, tensors: [{name,
//!                       shape, type, bytes}]}
//! ```
//!
//! The files are staged in a hidden directory inside `<out>` and renamed into place one by one,
//! `manifest.json` last (the browser reads it first and keys its cache on it), so every file is
//! whole at every moment and other files in `<out>` are kept ([`crate::output`]). Before the
//! renames the staged model is loaded back and
//! its entities on the examples are compared with the float model's, through the predictor its
//! task names, as `trainer tag` and the browser will load it.
use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use multitag_core::{BundledExample, Split};
use multitag_model::gguf::{write_gguf, ExportMetadata, StoredTensor};
use multitag_model::{nn::weights, predictor_from_gguf, DenseCompute, GgufFile, Predictor, Quant};
use serde::Serialize;

use crate::args::{DataArgs, LabeledArgs};
use crate::model_dir::ModelDir;
use crate::output::staging_dir;

pub struct Export<'a> {
    pub model: &'a Path,
    pub quant: Quant,
    pub out: &'a Path,
    /// The data whose test items become the examples (the data the model was trained on).
    pub data: &'a DataArgs,
    pub labeled: &'a LabeledArgs,
    pub examples: usize,
}

#[derive(Debug, Serialize)]
pub struct FileEntry {
    pub name: String,
    pub bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct Manifest {
    pub task: String,
    pub quant: String,
    pub files: Vec<FileEntry>,
    pub source: String,
    pub labels: Vec<String>,
    pub tensors: Vec<StoredTensor>,
}

impl Export<'_> {
    pub fn run(&self) -> Result<Manifest> {
        let dir = ModelDir::read(self.model)?;
        let weights_bytes = dir.require_safetensors("export from")?;
        let labels = dir.labels.clone().with_context(|| {
            format!(
                "{}: no labels.json; only a trained model can be exported",
                self.model.display()
            )
        })?;
        let device = Device::Cpu;
        // Loading the float model first checks that every tensor its task needs is present.
        let float = dir.predictor(&device, DenseCompute::default())?;
        let source = self.model.join("model.safetensors").display().to_string();
        let tensors = weights::load_safetensors(&source, weights_bytes, &device)?;
        let (gguf, stored) = write_gguf(
            &tensors,
            &ExportMetadata {
                config_json: &dir.config_text,
                labels: &labels,
                quant: self.quant,
                source: &self.model.display().to_string(),
                task: dir.task.name(),
                tokenizer_json: Some(&dir.tokenizer_bytes),
            },
        )
        .with_context(|| format!("exporting {source}"))?;
        let examples = self.examples(&dir);

        let existed = self.out.exists();
        let staged = staging_dir(&self.out.join("export"))?;
        let staged_result = self.stage(&staged, &gguf, &dir.tokenizer_bytes, &examples, &stored);
        let manifest = staged_result.and_then(|files| {
            let manifest = Manifest {
                task: dir.task.name().to_string(),
                quant: self.quant.name().to_string(),
                files,
                source: self.model.display().to_string(),
                labels: labels.labels.clone(),
                tensors: stored,
            };
            let path = staged.join("manifest.json");
            std::fs::write(&path, serde_json::to_string_pretty(&manifest)?)
                .with_context(|| format!("writing {}", path.display()))?;
            self.verify(
                &staged,
                &gguf,
                &dir.tokenizer_bytes,
                float.as_ref(),
                &examples,
            )?;
            Ok(manifest)
        });
        match manifest {
            Ok(manifest) => {
                for name in [
                    "model.gguf",
                    "tokenizer.json",
                    "examples.json",
                    "manifest.json",
                ] {
                    let to = self.out.join(name);
                    std::fs::rename(staged.join(name), &to)
                        .with_context(|| format!("moving {} into place", to.display()))?;
                }
                std::fs::remove_dir_all(&staged)
                    .with_context(|| format!("removing {}", staged.display()))?;
                Ok(manifest)
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&staged);
                if !existed {
                    // Only the directory this export created, and only while it is empty.
                    let _ = std::fs::remove_dir(self.out);
                }
                Err(e)
            }
        }
    }

    /// Up to `self.examples` TEST-split items spread evenly over the split (the first, then every
    /// n/k-th), or none with a warning when the data cannot be read or the model was trained
    /// on another split (its test items would be training items).
    fn examples(&self, dir: &ModelDir) -> Vec<BundledExample> {
        if self.examples == 0 {
            return Vec::new();
        }
        let loaded = self
            .labeled
            .load(self.data)
            .and_then(|d| d.check_held_out(dir).map(|()| d));
        let dataset = match loaded {
            Ok(d) => d,
            Err(e) => {
                eprintln!("warning: writing no examples: {e:#}");
                return Vec::new();
            }
        };
        let test = dataset.split(Split::Test);
        let k = self.examples.min(test.len());
        (0..k)
            .map(|i| test[i * test.len() / k])
            .map(|r| BundledExample {
                id: r.id.clone(),
                title: r.title.clone(),
                description: r.description.clone(),
            })
            .collect()
    }

    fn stage(
        &self,
        staged: &Path,
        gguf: &[u8],
        tokenizer: &[u8],
        examples: &[BundledExample],
        stored: &[StoredTensor],
    ) -> Result<Vec<FileEntry>> {
        let examples_json = serde_json::to_string_pretty(examples)?;
        let mut files = Vec::new();
        for (name, bytes) in [
            ("model.gguf", gguf),
            ("tokenizer.json", tokenizer),
            ("examples.json", examples_json.as_bytes()),
        ] {
            let path = staged.join(name);
            std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
            files.push(FileEntry {
                name: name.to_string(),
                bytes: bytes.len() as u64,
            });
        }
        let mut counts = std::collections::BTreeMap::<&str, (usize, usize)>::new();
        for t in stored {
            let c = counts.entry(t.dtype.as_str()).or_default();
            c.0 += 1;
            c.1 += t.bytes;
        }
        let summary: Vec<String> = counts
            .iter()
            .map(|(ty, (n, b))| format!("{n} {ty} ({:.2} MB)", *b as f64 / 1e6))
            .collect();
        eprintln!(
            "{} tensors as {}: {}",
            stored.len(),
            self.quant,
            summary.join(", ")
        );
        Ok(files)
    }

    /// Loads the staged export back and compares its tags with the float model's on the examples.
    fn verify(
        &self,
        staged: &Path,
        gguf: &[u8],
        tokenizer: &[u8],
        float: &dyn Predictor,
        examples: &[BundledExample],
    ) -> Result<()> {
        let file = GgufFile::read(&staged.join("model.gguf").display().to_string(), gguf)?;
        let exported = predictor_from_gguf(
            &file,
            &staged.join("tokenizer.json").display().to_string(),
            tokenizer,
            &Device::Cpu,
            DenseCompute::default(),
        )
        .context("the exported model does not load back")?;
        if exported.task() != float.task() || exported.entity_types() != float.entity_types() {
            bail!("the exported model's task or entity types differ from the source's");
        }
        let titles: Vec<&str> = examples.iter().map(|e| e.title.as_str()).collect();
        let a = float.extract(&titles, 16)?;
        let b = exported.extract(&titles, 16)?;
        let same = a
            .iter()
            .zip(&b)
            .filter(|(x, y)| {
                let spans = |t: &multitag_model::TaggedTitle| -> Vec<(String, usize, usize)> {
                    t.entities
                        .iter()
                        .map(|e| (e.label.clone(), e.start, e.end))
                        .collect()
                };
                spans(x) == spans(y)
            })
            .count();
        // Sentence embeddings (the similarity view): the worst cosine between float and export.
        let min_cosine = if titles.is_empty() {
            1.0
        } else {
            let ea = float.embed(&titles, float.max_tokens(), 16)?;
            let eb = exported.embed(&titles, exported.max_tokens(), 16)?;
            (ea * eb)?.sum(1)?.min(0)?.to_scalar::<f32>()?
        };
        let bytes: u64 = std::fs::read_dir(staged)?
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .sum();
        eprintln!(
            "exported {} ({}) to {}: model.gguf {:.2} MB, {:.2} MB in all; the export tags {same} of \
             {} examples exactly as the float model does (title embeddings: cosine >= {min_cosine:.4})",
            self.model.display(),
            self.quant,
            self.out.display(),
            gguf.len() as f64 / 1e6,
            bytes as f64 / 1e6,
            titles.len()
        );
        Ok(())
    }
}

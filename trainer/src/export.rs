//! `trainer export`: a trained model directory to the directory the browser app loads.
//!
//! ```text
//! <out>/model.gguf      every tensor of the trained model, stored by the rule of
//!                       multitag_model::gguf (f32 vectors; matrices as the requested type,
//!                       falling back per tensor when a row does not divide into its blocks), with
//!                       the config, labels (a tagger's) or types and settings (a relation
//!                       model's), task, requested type and source directory in the metadata, and
//!                       SHA-256 checksums of the tensors, labels, task metadata and config that
//!                       every load verifies (multitag_model::gguf)
//! <out>/tokenizer.json  copied from the model directory
//! <out>/examples.json   a few held-out TEST items: a tagger's (id, title, description) for the
//!                       browser's similarity view, a relation model's test sentences (id, text)
//!                       for its Relations view; `[]` (with a warning) if the data is unreadable
//! <out>/manifest.json   {task, quant, files: [{name, bytes}], source, labels (a tagger's) or
//!                       types and span_model (a relation model's), tensors: [{name, shape, type,
//!                       bytes}]}
//! ```
//!
//! A relation model (training.json's `task: relations`) is exported the same way, as the browser's
//! `relations/` directory (`--out public/relations`): its heads (width embedding, entity and
//! relation classifiers: everything outside the encoder) are stored f32 whatever `--quant` says
//! (see [`Export::run_relations`] for why), its types (types.json, as a SpERT types file) and its
//! settings and decoding (training.json's options: span method, widths, longest span, relation
//! threshold) go into the metadata, and it loads back through
//! `multitag_model::tasks::relations::SpanExtractor::from_gguf`.
//!
//! The files are staged in a hidden directory inside `<out>` and renamed into place one by one,
//! `manifest.json` last (the browser reads it first and keys its cache on it), so every file is
//! whole at every moment and other files in `<out>` are kept ([`crate::output`]). Before the
//! renames the staged model is loaded back and its output on the examples is compared with the
//! float model's (a tagger's entities through the predictor its task names; a relation model's
//! entities and relations through its extractor), as `trainer tag` and the browser will load it.
use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use multitag_core::binder::TypeDescription;
use multitag_core::relations::Document;
use multitag_core::{BundledExample, Split, TextRelations};
use multitag_model::gguf::{write_gguf, ExportMetadata, StoredTensor};
use multitag_model::nn::weights::ENCODER_PREFIXES;
use multitag_model::tasks::relations::extractor::SpanModelSettings;
use multitag_model::tasks::relations::SpanExtractor;
use multitag_model::{
    nn::weights, predictor_from_gguf, DenseCompute, GgufFile, Predictor, Quant, TaskKind,
};
use serde::Serialize;

use crate::args::{DataArgs, LabeledArgs};
use crate::model_dir::ModelDir;
use crate::output::staging_dir;
use crate::relations::data::read_part;
use crate::relations::model::load_extractor;

/// Sentences per encoder pass when a relation export is checked against its float model.
const RELATION_BATCH: usize = 8;

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
    /// A tagger's tags.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    /// A relation model's entity and relation types.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub types: Option<ManifestTypes>,
    /// A relation model's method (`spert`, `spert-mt`, `spert+iou`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span_method: Option<String>,
    /// A relation model's settings and decoding, as its metadata records them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span_model: Option<SpanModelSettings>,
    /// A BINDER model's trained types with their descriptions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub described_types: Option<Vec<TypeDescription>>,
    pub tensors: Vec<StoredTensor>,
}

#[derive(Debug, Serialize)]
pub struct ManifestTypes {
    pub entities: Vec<String>,
    pub relations: Vec<String>,
}

/// A test sentence bundled with a relation export, for the browser's Relations view.
#[derive(Debug, Clone, Serialize)]
pub struct SentenceExample {
    /// `<test file name>#<document index>`.
    pub id: String,
    /// The document's tokens joined by single spaces.
    pub text: String,
}

impl Export<'_> {
    pub fn run(&self) -> Result<Manifest> {
        let dir = ModelDir::read(self.model)?;
        let weights_bytes = dir.require_safetensors("export from")?;
        if dir.task == TaskKind::Relations {
            return self.run_relations(&dir, weights_bytes);
        }
        if dir.task == TaskKind::Binder {
            return self.run_binder(&dir, weights_bytes);
        }
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
                labels: Some(&labels),
                quant: self.quant,
                source: &self.model.display().to_string(),
                task: dir.task.name(),
                tokenizer_json: Some(&dir.tokenizer_bytes),
                task_metadata: &[],
                float_prefixes: &[],
            },
        )
        .with_context(|| format!("exporting {source}"))?;
        let examples = self.examples(&dir);
        let examples_json = serde_json::to_string_pretty(&examples)?;
        let manifest = Manifest {
            labels: Some(labels.labels.clone()),
            ..self.manifest(&dir, stored)
        };
        self.write_out(
            &gguf,
            &dir.tokenizer_bytes,
            &examples_json,
            manifest,
            |staged| {
                self.verify(
                    staged,
                    &gguf,
                    &dir.tokenizer_bytes,
                    float.as_ref(),
                    &examples,
                )
            },
        )
    }

    /// A relation model: the float model is loaded first (every tensor it needs present, its
    /// types and options read), then written with its types and settings in the metadata.
    ///
    /// Its heads stay f32, whatever `--quant` asks for: the width embedding and the entity and
    /// relation classifiers (every tensor outside the encoder, `bert.`). Why: they are small
    /// (for all-MiniLM-L6-v2 on CoNLL04, about 12,500 values, 50 KB in f32, beside an 18 MB q4k
    /// encoder); their rows (793 and 1,202 values there) divide into no quantization block, so
    /// q8_0 and q4k would store them as f16 anyway (the storage rule of `multitag_model::gguf`),
    /// which would save 25 KB; and their outputs are the scores that decoding compares directly
    /// (the entity class argmax, the relation threshold), so they are kept as trained. The loader
    /// multiplies them in f32 too, whatever the encoder's kernel.
    fn run_relations(&self, dir: &ModelDir, weights_bytes: &[u8]) -> Result<Manifest> {
        let device = Device::Cpu;
        let float = load_extractor(dir, &device)?;
        let (gguf, stored) =
            self.gguf_with_f32_heads(dir, weights_bytes, &float.export_metadata())?;
        let examples = self.sentence_examples(dir, &float);
        let examples_json = serde_json::to_string_pretty(&examples)?;
        let types = float.types();
        let manifest = Manifest {
            types: Some(ManifestTypes {
                entities: types.entities.iter().map(|t| t.name.clone()).collect(),
                relations: types.relations.iter().map(|t| t.name.clone()).collect(),
            }),
            span_method: Some(float.model.settings.variant()),
            span_model: Some(SpanModelSettings::of(&float)),
            ..self.manifest(dir, stored)
        };
        self.write_out(
            &gguf,
            &dir.tokenizer_bytes,
            &examples_json,
            manifest,
            |staged| self.verify_relations(staged, &gguf, &dir.tokenizer_bytes, &float, &examples),
        )
    }

    /// A BINDER model, as a tagger is exported (its examples are test titles, checked through the
    /// same predictor interface), with its trained types and settings in the metadata. Both
    /// encoders take `--quant`; the heads (everything outside them: BINDER's projections, width
    /// embedding and log-scales, about 0.2 M values) stay f32 as a relation model's do, so that
    /// the scores compared with the `[CLS]` threshold are the trained ones.
    fn run_binder(&self, dir: &ModelDir, weights_bytes: &[u8]) -> Result<Manifest> {
        let device = Device::Cpu;
        let float = crate::binder::load_tagger(dir, &device, DenseCompute::default())?;
        let (gguf, stored) =
            self.gguf_with_f32_heads(dir, weights_bytes, &float.export_metadata())?;
        let examples = self.examples(dir);
        let examples_json = serde_json::to_string_pretty(&examples)?;
        let manifest = Manifest {
            described_types: Some(float.types().to_vec()),
            ..self.manifest(dir, stored)
        };
        self.write_out(
            &gguf,
            &dir.tokenizer_bytes,
            &examples_json,
            manifest,
            |staged| self.verify(staged, &gguf, &dir.tokenizer_bytes, &float, &examples),
        )
    }

    /// The manifest's fields every task has (the files are filled in when staged); a task adds
    /// its own.
    fn manifest(&self, dir: &ModelDir, tensors: Vec<StoredTensor>) -> Manifest {
        Manifest {
            task: dir.task.name().to_string(),
            quant: self.quant.name().to_string(),
            files: Vec::new(),
            source: self.model.display().to_string(),
            labels: None,
            types: None,
            span_method: None,
            span_model: None,
            described_types: None,
            tensors,
        }
    }

    /// The GGUF file of a model whose heads (every tensor outside its encoders) stay f32, with
    /// `task_metadata`.
    fn gguf_with_f32_heads(
        &self,
        dir: &ModelDir,
        weights_bytes: &[u8],
        task_metadata: &[(&'static str, String)],
    ) -> Result<(Vec<u8>, Vec<StoredTensor>)> {
        let source = self.model.join("model.safetensors").display().to_string();
        let tensors = weights::load_safetensors(&source, weights_bytes, &Device::Cpu)?;
        let mut heads: Vec<&str> = tensors
            .keys()
            .map(String::as_str)
            .filter(|name| !ENCODER_PREFIXES.iter().any(|p| name.starts_with(p)))
            .collect();
        heads.sort_unstable();
        write_gguf(
            &tensors,
            &ExportMetadata {
                config_json: &dir.config_text,
                labels: None,
                quant: self.quant,
                source: &self.model.display().to_string(),
                task: dir.task.name(),
                tokenizer_json: Some(&dir.tokenizer_bytes),
                task_metadata,
                float_prefixes: &heads,
            },
        )
        .with_context(|| format!("exporting {source}"))
    }

    /// Stages the files, writes the manifest (with the files' sizes), runs `verify` on the
    /// staged directory, then moves everything into `self.out`, `manifest.json` last; on an
    /// error nothing in `self.out` is touched.
    fn write_out(
        &self,
        gguf: &[u8],
        tokenizer: &[u8],
        examples_json: &str,
        mut manifest: Manifest,
        verify: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<Manifest> {
        let existed = self.out.exists();
        let staged = staging_dir(&self.out.join("export"))?;
        let staged_result = self.stage(&staged, gguf, tokenizer, examples_json, &manifest.tensors);
        let manifest = staged_result.and_then(|files| {
            manifest.files = files;
            let path = staged.join("manifest.json");
            std::fs::write(&path, serde_json::to_string_pretty(&manifest)?)
                .with_context(|| format!("writing {}", path.display()))?;
            verify(&staged)?;
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

    /// Up to `self.examples` test sentences of a relation model, spread evenly over its test
    /// documents as [`Self::examples`] spreads a tagger's: from `--test` or `--data DIR`, else
    /// the test file training.json names; none, with a warning, when there is no readable one.
    fn sentence_examples(&self, dir: &ModelDir, float: &SpanExtractor) -> Vec<SentenceExample> {
        if self.examples == 0 {
            return Vec::new();
        }
        let test = match self.relation_test_file(dir) {
            Ok(Some(path)) => path,
            Ok(None) => {
                eprintln!(
                    "warning: writing no examples: no test documents (--test FILE or --data DIR, \
                     or the test file training.json names)"
                );
                return Vec::new();
            }
            Err(e) => {
                eprintln!("warning: writing no examples: {e:#}");
                return Vec::new();
            }
        };
        let documents: Vec<Document> = match read_part(&test, float.types()) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("warning: writing no examples: {e:#}");
                return Vec::new();
            }
        };
        let name = test
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let k = self.examples.min(documents.len());
        (0..k)
            .map(|i| &documents[i * documents.len() / k])
            .map(|d| SentenceExample {
                id: format!("{name}#{}", d.index),
                text: d.tokens.join(" "),
            })
            .collect()
    }

    /// The relation test file: the command line's, else training.json's `data.test` when it is
    /// still there.
    fn relation_test_file(&self, dir: &ModelDir) -> Result<Option<std::path::PathBuf>> {
        if let Some(path) = self.labeled.relation_files().test_file()? {
            return Ok(Some(path));
        }
        let training = dir.path.join("training.json");
        let text = std::fs::read_to_string(&training)
            .with_context(|| format!("reading {}", training.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{}: not JSON", training.display()))?;
        Ok(value["data"]["test"]
            .as_str()
            .map(std::path::PathBuf::from)
            .filter(|p| p.is_file()))
    }

    fn stage(
        &self,
        staged: &Path,
        gguf: &[u8],
        tokenizer: &[u8],
        examples_json: &str,
        stored: &[StoredTensor],
    ) -> Result<Vec<FileEntry>> {
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
        let bytes = staged_bytes(staged)?;
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

    /// Loads the staged relation export back, as `trainer tag` and the browser do, and compares
    /// its entities and relations on the examples with the float model's.
    fn verify_relations(
        &self,
        staged: &Path,
        gguf: &[u8],
        tokenizer: &[u8],
        float: &SpanExtractor,
        examples: &[SentenceExample],
    ) -> Result<()> {
        let file = GgufFile::read(&staged.join("model.gguf").display().to_string(), gguf)?;
        let exported = SpanExtractor::from_gguf(
            &file,
            &staged.join("tokenizer.json").display().to_string(),
            tokenizer,
            &Device::Cpu,
            DenseCompute::default(),
        )
        .context("the exported model does not load back")?;
        if exported.types() != float.types()
            || SpanModelSettings::of(&exported) != SpanModelSettings::of(float)
        {
            bail!("the exported model's types or settings differ from the source's");
        }
        let texts: Vec<&str> = examples.iter().map(|e| e.text.as_str()).collect();
        let a = float.extract_texts(&texts, RELATION_BATCH)?;
        let b = exported.extract_texts(&texts, RELATION_BATCH)?;
        let same = a.iter().zip(&b).filter(|(x, y)| same_found(x, y)).count();
        let worst = a
            .iter()
            .zip(&b)
            .filter(|(x, y)| same_found(x, y))
            .flat_map(|(x, y)| score_differences(x, y))
            .fold(0.0f32, f32::max);
        let (entities, relations) = a.iter().fold((0, 0), |(e, r), x| {
            (e + x.entities.len(), r + x.relations.len())
        });
        let bytes = staged_bytes(staged)?;
        eprintln!(
            "exported {} ({}) to {}: model.gguf {:.2} MB, {:.2} MB in all; the export finds the \
             same entities and relations as the float model in {same} of {} examples (the float \
             model: {entities} entities, {relations} relations; scores differ by at most \
             {worst:.4} where both agree)",
            self.model.display(),
            self.quant,
            self.out.display(),
            gguf.len() as f64 / 1e6,
            bytes as f64 / 1e6,
            texts.len()
        );
        Ok(())
    }
}

/// Whether two extractions of one text found the same entities (type and character span, in
/// order) and the same relations (type and arguments), whatever their scores.
pub fn same_found(a: &TextRelations, b: &TextRelations) -> bool {
    let entities = |t: &TextRelations| -> Vec<(String, usize, usize)> {
        t.entities
            .iter()
            .map(|e| (e.label.clone(), e.start, e.end))
            .collect()
    };
    let relations = |t: &TextRelations| -> Vec<(String, usize, usize)> {
        t.relations
            .iter()
            .map(|r| (r.label.clone(), r.head, r.tail))
            .collect()
    };
    entities(a) == entities(b) && relations(a) == relations(b)
}

/// The score differences of the entities and relations of two extractions that [`same_found`].
fn score_differences<'a>(
    a: &'a TextRelations,
    b: &'a TextRelations,
) -> impl Iterator<Item = f32> + 'a {
    let entities = a
        .entities
        .iter()
        .zip(&b.entities)
        .map(|(x, y)| (x.score - y.score).abs());
    let relations = a
        .relations
        .iter()
        .zip(&b.relations)
        .map(|(x, y)| (x.score - y.score).abs());
    entities.chain(relations)
}

/// The bytes of the files staged for an export, as the summary line reports them.
fn staged_bytes(staged: &Path) -> Result<u64> {
    Ok(std::fs::read_dir(staged)?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum())
}

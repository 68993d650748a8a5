//! Argument groups several subcommands share (catalog and split, device, matmul), with defaults.
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use multitag_core::{CatalogColumns, LabelMap, ENTITY_TYPES};
use multitag_model::DenseCompute;

use crate::data::{load_dataset, load_labeled, Dataset, LabeledFiles};
use crate::model_dir::ModelDir;
use crate::settings;

#[derive(clap::Args, Clone)]
pub struct DataArgs {
    /// The catalog CSV [default: $MULTITAG_DATA/myntra_products/myntra_products_catalog.csv,
    /// MULTITAG_DATA defaulting to ../shared/data]
    #[arg(long)]
    catalog: Option<PathBuf>,
    /// The catalog's column names, where they differ from the bundled catalog's:
    /// `title=Name,brand=Maker,description=About,gender=` (fields id, title, brand, gender,
    /// colour, description; an empty name: the catalog has no such column).
    #[arg(long, value_parser = parse_columns)]
    columns: Option<CatalogColumns>,
    /// Seed of the 70/30 item split (and the dev set carved from training).
    #[arg(long, default_value_t = 42)]
    pub split_seed: u64,
}

fn parse_columns(spec: &str) -> Result<CatalogColumns, String> {
    CatalogColumns::parse(spec)
}

impl DataArgs {
    pub fn catalog(&self) -> PathBuf {
        self.catalog
            .clone()
            .unwrap_or_else(settings::default_catalog)
    }
    pub fn columns(&self) -> CatalogColumns {
        self.columns.clone().unwrap_or_default()
    }
    pub fn load(&self) -> Result<Dataset> {
        load_dataset(&self.catalog(), &self.columns(), self.split_seed)
    }
}

/// A user's labeled titles instead of the catalog (`train`, `eval`, `compare`): JSONL of `words` +
/// IOB2 `tags` (what `trainer label` writes) or of `text` + character-offset `spans`, or CoNLL
/// token-per-line IOB2 (multitag_core::labeled). The entity types are the data's.
#[derive(clap::Args, Clone, Default)]
pub struct LabeledArgs {
    /// Labeled titles, split into train/dev/test by --split-seed (by id, or by the title's
    /// words when a record has no id).
    #[arg(long, conflicts_with_all = ["catalog", "columns", "train", "dev", "test"])]
    data: Option<PathBuf>,
    /// Labeled training titles; the split is given by the files (with --dev and --test).
    #[arg(long, conflicts_with_all = ["catalog", "columns"])]
    train: Option<PathBuf>,
    /// Labeled dev titles, which pick the best epoch [default: 10% of --train, by --split-seed].
    #[arg(long, conflicts_with_all = ["catalog", "columns"])]
    dev: Option<PathBuf>,
    /// Labeled test titles, scored by `eval` and `compare`.
    #[arg(long, conflicts_with_all = ["catalog", "columns"])]
    test: Option<PathBuf>,
    /// With --task relations: the SpERT types file [default: the one *_types.json in --data].
    /// With --task binder: each entity type's name and description in words (JSON, see
    /// data/binder/README.md).
    #[arg(long)]
    types: Option<PathBuf>,
    /// With --task relations and --data DIR: cross-validation fold K's files
    /// (*_split_K_train.json and *_split_K_test.json, as SpERT's ADE names them).
    #[arg(long, requires = "data")]
    fold: Option<usize>,
}

impl LabeledArgs {
    /// The files as a relation extraction dataset (`--task relations`): `--data` is then a
    /// directory of SpERT JSON files.
    pub fn relation_files(&self) -> crate::relations::RelationFiles {
        crate::relations::RelationFiles {
            data: self.data.clone(),
            train: self.train.clone(),
            dev: self.dev.clone(),
            test: self.test.clone(),
            types: self.types.clone(),
            fold: self.fold,
        }
    }

    /// `--types`, for BINDER.
    pub fn types_file(&self) -> Option<&std::path::Path> {
        self.types.as_deref()
    }

    /// `--train`, read as it is (the BINDER step's benchmark takes its first sentences).
    pub fn train_file(&self) -> Option<&std::path::Path> {
        self.train.as_deref()
    }

    /// Whether labeled files replace the catalog.
    pub fn given(&self) -> bool {
        self.data.is_some() || self.train.is_some() || self.dev.is_some() || self.test.is_some()
    }

    /// The labeled files when given, else the catalog of `data`.
    pub fn load(&self, data: &DataArgs) -> Result<Dataset> {
        if let Some(path) = &self.data {
            return load_labeled(LabeledFiles::Seeded(path), data.split_seed);
        }
        if self.given() {
            let files = LabeledFiles::Given {
                train: self.train.as_deref(),
                dev: self.dev.as_deref(),
                test: self.test.as_deref(),
            };
            return load_labeled(files, data.split_seed);
        }
        data.load()
    }
}

#[derive(clap::Args, Clone)]
pub struct DeviceArgs {
    /// cpu, or cuda (needs a build with --features cuda).
    #[arg(long, default_value = "cpu")]
    device: String,
}

impl DeviceArgs {
    pub fn device(&self) -> Result<Device> {
        match self.device.as_str() {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Device::new_cuda(0)
                .context("no CUDA device (is this binary built with --features cuda?)"),
            other => bail!("unknown device `{other}` (cpu or cuda)"),
        }
    }
}

/// Where an encoder's inference runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// candle on this process's device (`--device`).
    Cpu,
    /// The wgpu encoder on the first GPU adapter (Vulkan, Metal or DX12); the heads and decoding
    /// stay on the CPU.
    Wgpu,
}

#[derive(clap::Args, Clone, Copy)]
pub struct BackendArgs {
    /// Where the encoder's inference runs: cpu, or wgpu (a GPU through Vulkan, Metal or DX12).
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    pub backend: Backend,
}

impl BackendArgs {
    /// Moves `predictor`'s text encoder to the chosen backend (its weights read again from `dir`)
    /// and says where it runs.
    pub fn apply(
        &self,
        dir: &ModelDir,
        predictor: &mut dyn multitag_model::Predictor,
    ) -> Result<()> {
        let encoder = predictor.text_encoder_mut().with_context(|| {
            format!(
                "{}: this model's encoder cannot move to the GPU",
                dir.path.display()
            )
        })?;
        self.apply_to(dir, encoder)
    }

    /// Moves `encoder` (`dir`'s text encoder) to the chosen backend and says where it runs.
    pub fn apply_to(
        &self,
        dir: &ModelDir,
        encoder: &mut multitag_model::BertEncoder,
    ) -> Result<()> {
        if self.backend == Backend::Wgpu {
            let adapter = dir.encoder_on_gpu(encoder)?;
            eprintln!("encoder on {adapter}");
        }
        Ok(())
    }

    /// Refuses the GPU where there is no encoder to move (a base encoder's plain embeddings).
    pub fn cpu_only(&self, dir: &ModelDir) -> Result<()> {
        if self.backend != Backend::Cpu {
            bail!(
                "{}: a base encoder's embeddings run on the CPU only (--backend cpu)",
                dir.path.display()
            );
        }
        Ok(())
    }
}

#[derive(clap::Args, Clone, Copy)]
pub struct MatmulArgs {
    /// For an exported model, how its matrices multiply: f32 (dequantized at load), quantized
    /// (candle's QMatMul, least memory) or int8 (the browser's kernel; on CPUs with AVX-512 VNNI
    /// an 8-bit kernel, the fastest).
    #[arg(long, default_value = "f32")]
    pub matmul: DenseCompute,
}

/// The base model at `path`, or the fetched all-MiniLM-L6-v2 in the cache.
pub fn base_model(path: Option<PathBuf>) -> Result<ModelDir> {
    ModelDir::read(&path.unwrap_or_else(settings::default_base_model))
}

/// The label set the catalog's models are trained with: `O` and the B-/I- tags of every type in
/// `ENTITY_TYPES`.
pub fn labels() -> LabelMap {
    LabelMap::from_entity_types(&ENTITY_TYPES)
}

/// `gold`, or the committed gold set when the data is the default catalog (its items are that
/// catalog's) and the checkout has it.
pub fn gold_or_default(
    gold: Option<PathBuf>,
    data: &DataArgs,
    labeled: &LabeledArgs,
) -> Option<PathBuf> {
    match gold {
        Some(g) => Some(g),
        None if data.catalog.is_none() && !labeled.given() => {
            Some(settings::default_gold()).filter(|p| p.is_file())
        }
        None => None,
    }
}

//! Argument groups several subcommands share (catalog and split, device, matmul), with defaults.
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use multitag_core::{LabelMap, ENTITY_TYPES};
use multitag_model::DenseCompute;

use crate::data::{load_dataset, Dataset};
use crate::model_dir::ModelDir;
use crate::settings;

#[derive(clap::Args, Clone)]
pub struct DataArgs {
    /// The catalog CSV [default: $MULTITAG_DATA/myntra_products/myntra_products_catalog.csv,
    /// MULTITAG_DATA defaulting to ../shared/data]
    #[arg(long)]
    catalog: Option<PathBuf>,
    /// Seed of the 70/30 item split (and the dev set carved from training).
    #[arg(long, default_value_t = 42)]
    pub split_seed: u64,
}

impl DataArgs {
    pub fn catalog(&self) -> PathBuf {
        self.catalog
            .clone()
            .unwrap_or_else(settings::default_catalog)
    }
    pub fn load(&self) -> Result<Dataset> {
        load_dataset(&self.catalog(), self.split_seed)
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

/// The label set models are trained with: `O` and the B-/I- tags of every type in `ENTITY_TYPES`.
pub fn labels() -> LabelMap {
    LabelMap::from_entity_types(&ENTITY_TYPES)
}

/// `gold`, or the committed gold set when the catalog is the default one (its items are that
/// catalog's) and the checkout has it.
pub fn gold_or_default(gold: Option<PathBuf>, data: &DataArgs) -> Option<PathBuf> {
    match gold {
        Some(g) => Some(g),
        None if data.catalog.is_none() => Some(settings::default_gold()).filter(|p| p.is_file()),
        None => None,
    }
}

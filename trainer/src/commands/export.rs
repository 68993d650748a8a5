//! `trainer export`: writes a trained model as the browser's model directory.
use std::path::PathBuf;

use anyhow::Result;

use crate::args::{DataArgs, LabeledArgs};
use crate::export;
use crate::output::{prepare_out, EXPORT};

#[derive(clap::Args)]
pub struct Args {
    /// A trained model directory (model.safetensors, config.json, tokenizer.json, labels.json;
    /// or, for a relation model, types.json and training.json with `task: relations`, exported
    /// for the browser's Relations view, e.g. `--out public/relations`).
    #[arg(long)]
    model: PathBuf,
    /// Weight type: f32, f16, q8_0 or q4k (per-tensor fallbacks: see `multitag_model::gguf`).
    #[arg(long, default_value = "q8_0")]
    quant: multitag_model::Quant,
    #[arg(long, default_value = "public/model")]
    out: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    // The labeled data the model was trained on, when not the catalog: the examples are its
    // test items.
    #[command(flatten)]
    labeled: LabeledArgs,
    /// How many test-split items (a relation model's: test sentences) to write to examples.json.
    #[arg(long, default_value_t = 16)]
    examples: usize,
    /// Write into --out even when it holds files that no export wrote (they are kept).
    #[arg(long)]
    force: bool,
}

pub fn run(args: Args) -> Result<()> {
    let Args {
        model,
        quant,
        out,
        data,
        labeled,
        examples,
        force,
    } = args;
    prepare_out(&out, EXPORT, force)?;
    export::Export {
        model: &model,
        quant,
        out: &out,
        data: &data,
        labeled: &labeled,
        examples,
    }
    .run()?;
    Ok(())
}

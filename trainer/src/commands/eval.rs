//! `trainer eval`: scores a trained model on the test split and gold set (NER and retrieval).
use std::path::PathBuf;

use anyhow::Result;
use multitag_core::Split;

use crate::args::{gold_or_default, DataArgs, DeviceArgs, MatmulArgs};
use crate::data::load_gold;
use crate::evaluate;
use crate::model_dir::ModelDir;
use crate::output::write_json;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    device: DeviceArgs,
    #[arg(long)]
    gold: Option<PathBuf>,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Evaluate only the first N test items.
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long, default_value_t = 128)]
    description_tokens: usize,
    #[command(flatten)]
    matmul: MatmulArgs,
}

pub fn run(args: Args) -> Result<()> {
    let Args {
        model,
        data,
        device,
        gold,
        json,
        limit,
        description_tokens,
        matmul,
    } = args;
    let dir = ModelDir::read(&model)?;
    let predictor = dir.predictor(&device.device()?, matmul.matmul)?;
    let dataset = data.load()?;
    dataset.check_held_out(&model)?;
    let mut test = dataset.split(Split::Test);
    if let Some(limit) = limit {
        test.truncate(limit);
    }
    let gold_report = match gold_or_default(gold, &data) {
        Some(path) => {
            let gold = load_gold(&path, &dataset)?;
            Some(evaluate::evaluate_ner(
                predictor.as_ref(),
                &gold.iter().collect::<Vec<_>>(),
                64,
            )?)
        }
        None => None,
    };
    let report = evaluate::EvalReport {
        model: model.display().to_string(),
        test: evaluate::evaluate_ner(predictor.as_ref(), &test, 64)?,
        gold: gold_report,
        retrieval: evaluate::evaluate_retrieval(
            predictor.as_ref(),
            &test,
            predictor.max_tokens(),
            description_tokens,
            64,
        )?,
    };
    evaluate::print_report(&report);
    if let Some(path) = json {
        write_json(&path, &report)?;
    }
    Ok(())
}

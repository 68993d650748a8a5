//! `trainer eval`: scores a trained model on the test split and gold set (NER and retrieval).
use std::path::PathBuf;

use anyhow::Result;
use multitag_core::Split;

use crate::args::{gold_or_default, DataArgs, DeviceArgs, LabeledArgs, MatmulArgs};
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
    labeled: LabeledArgs,
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
        labeled,
        device,
        gold,
        json,
        limit,
        description_tokens,
        matmul,
    } = args;
    let dir = ModelDir::read(&model)?;
    let predictor = dir.predictor(&device.device()?, matmul.matmul)?;
    let dataset = labeled.load(&data)?;
    dataset.check_held_out(&model)?;
    let mut test = dataset.split(Split::Test);
    if let Some(limit) = limit {
        test.truncate(limit);
    }
    let seen = dataset.seen_titles();
    let gold = match gold_or_default(gold, &data, &labeled) {
        Some(path) => {
            let gold = load_gold(&path, &dataset)?;
            let gold: Vec<_> = gold.iter().collect();
            Some(evaluate::evaluate_held_out(
                predictor.as_ref(),
                &gold,
                &seen,
                64,
            )?)
        }
        None => None,
    };
    let test_ner = evaluate::evaluate_held_out(predictor.as_ref(), &test, &seen, 64)?;
    let report = evaluate::EvalReport {
        model: model.display().to_string(),
        test: test_ner.all,
        test_unseen: test_ner.unseen,
        gold_unseen: gold.as_ref().map(|g| g.unseen.clone()),
        gold: gold.map(|g| g.all),
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

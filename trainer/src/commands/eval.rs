//! `trainer eval`: scores a trained model on the test split and gold set (NER and retrieval); a
//! relation model (training.json's `task`) on its test documents with SpERT's evaluator.
use std::path::PathBuf;

use anyhow::Result;
use multitag_core::Split;

use crate::args::{gold_or_default, BackendArgs, DataArgs, DeviceArgs, LabeledArgs, MatmulArgs};
use crate::data::load_gold;
use crate::evaluate;
use crate::model_dir::ModelDir;
use crate::output::write_json;
use crate::train::Task;
use multitag_model::TaskKind;

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
    #[command(flatten)]
    backend: BackendArgs,
    /// The task the model must be for (checked; by default the one its training.json names).
    #[arg(long, value_enum)]
    task: Option<Task>,
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
        backend,
        task,
    } = args;
    let dir = ModelDir::read(&model)?;
    if let Some(task) = task {
        crate::train::check_task(&dir, task)?;
    }
    let device = device.device()?;
    if dir.task == TaskKind::Relations {
        let files = labeled.relation_files();
        let on = crate::relations::cli::Run {
            device: &device,
            compute: matmul.matmul,
            backend,
        };
        crate::relations::cli::eval(&dir, &files, &on, json.as_deref(), limit)?;
        return Ok(());
    }
    let dataset = labeled.load(&data)?;
    dataset.check_held_out(&dir)?;
    let mut test = dataset.split(Split::Test);
    if let Some(limit) = limit {
        test.truncate(limit);
    }
    let mut report = evaluate::EvalReport {
        model: model.display().to_string(),
        test: None,
        test_unseen: None,
        gold: None,
        gold_unseen: None,
        retrieval: Default::default(),
    };
    // A base encoder has no tags: only its embeddings are scored, the pretrained baseline of
    // the retrieval figures.
    let embedder = if !dir.is_trained() {
        backend.cpu_only(&dir)?;
        eprintln!(
            "{}: a base encoder (no tags): retrieval only",
            model.display()
        );
        dir.embedder(&device, matmul.matmul)?
    } else {
        // A BINDER model also tags the types `--types` describes (scored as any other type).
        let mut predictor: Box<dyn multitag_model::Predictor> = if dir.task == TaskKind::Binder {
            Box::new(crate::binder::load_tagger_with_types(
                &dir,
                &device,
                matmul.matmul,
                labeled.types_file(),
            )?)
        } else {
            dir.predictor(&device, matmul.matmul)?
        };
        backend.apply(&dir, predictor.as_mut())?;
        let seen = dataset.seen_titles();
        if let Some(path) = gold_or_default(gold, &data, &labeled) {
            let gold = load_gold(&path, &dataset)?;
            let gold: Vec<_> = gold.iter().collect();
            let scores = evaluate::evaluate_held_out(predictor.as_ref(), &gold, &seen, 64)?;
            (report.gold, report.gold_unseen) = (Some(scores.all), Some(scores.unseen));
        }
        let scores = evaluate::evaluate_held_out(predictor.as_ref(), &test, &seen, 64)?;
        (report.test, report.test_unseen) = (Some(scores.all), Some(scores.unseen));
        predictor
    };
    report.retrieval = evaluate::evaluate_retrieval(
        embedder.as_ref(),
        &test,
        embedder.max_tokens(),
        description_tokens,
        64,
    )?;
    evaluate::print_report(&report);
    if let Some(path) = json {
        write_json(&path, &report)?;
    }
    Ok(())
}

//! `trainer bench`: runs the chosen `crate::bench` workloads, each in a child process by default.
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::ValueEnum;

use crate::args::{base_model, labels, BackendArgs, DataArgs, DeviceArgs, LabeledArgs, MatmulArgs};
use crate::bench::{
    print_bench, Bench, BenchInput, BenchReport, BinderBenchData, Shapes, Workload,
};
use crate::model_dir::ModelDir;
use crate::output::write_json;
use crate::train::TrainOptions;

#[derive(clap::Args)]
pub struct Args {
    /// Base model directory [default: .cache/models/all-MiniLM-L6-v2].
    #[arg(long)]
    model: Option<PathBuf>,
    /// The model the tagging workloads time [default: --model]: a trained directory or an export
    /// (e.g. `public/model`, q8_0), whose head and quantization are then used as they are.
    #[arg(long)]
    tag_model: Option<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
    /// The train-relations workload's data: --data DIR of SpERT JSON (or --train and --types);
    /// train-binder's: --train FILE of labeled sentences and --types FILE.
    #[command(flatten)]
    labeled: LabeledArgs,
    #[command(flatten)]
    device: DeviceArgs,
    /// A plain text file of titles (one a line) instead of the catalog, e.g. on a machine without
    /// ../shared; descriptions are then each title's next eight titles joined.
    #[arg(long)]
    titles: Option<PathBuf>,
    /// Timed training steps per training workload (each step is one repetition).
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// Untimed training steps before the timed ones.
    #[arg(long, default_value_t = 2)]
    warmup_steps: usize,
    /// Titles tagged per repetition (the first N of the input).
    #[arg(long, default_value_t = 1000)]
    tag_titles: usize,
    /// Titles tagged per repetition at batch 1 [default: --tag-titles].
    #[arg(long)]
    tag_titles_batch1: Option<usize>,
    /// Timed repetitions of each tagging workload (after one untimed warm-up batch).
    #[arg(long, default_value_t = 3)]
    repetitions: usize,
    #[arg(long, value_enum, default_value_t = Shapes::Fixed)]
    shapes: Shapes,
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "train-multitask,train-ner,tag1,tag32"
    )]
    workloads: Vec<Workload>,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Run every workload in this process. By default each workload runs in a child process of
    /// its own, so that its peak RSS is its own (freed memory is not returned to the system, so a
    /// later workload would report an earlier one's peak) and no workload inherits another's heap.
    #[arg(long)]
    in_process: bool,
    #[command(flatten)]
    matmul: MatmulArgs,
    /// Where the tagging workloads' encoder runs: cpu, or wgpu (the first GPU adapter; its name
    /// is in each row's shape).
    #[command(flatten)]
    backend: BackendArgs,
    /// Training options: --batch-size (default 32; bench/run.sh passes 16 on CPU), --title-tokens,
    /// --description-tokens, --lambda, --triplet-form, --lr, --weight-decay, --clip, --seed.
    #[command(flatten)]
    options: TrainOptions,
}

/// `trainer bench`: reads the input, runs the chosen workloads, prints and optionally writes JSON.
pub fn run(args: Args) -> Result<()> {
    if args.workloads.len() > 1 && !args.in_process {
        return run_children(&args);
    }
    let device = args.device.device()?;
    // The span/relation and BINDER workloads read their own data and nothing of the catalog.
    let own_data_only = args
        .workloads
        .iter()
        .all(|w| matches!(w, Workload::TrainRelations | Workload::TrainBinder));
    let relations = if args.workloads.contains(&Workload::TrainRelations) {
        Some(args.labeled.relation_files().read(true, false)?)
    } else {
        None
    };
    let binder = if args.workloads.contains(&Workload::TrainBinder) {
        Some(BinderBenchData::read(&args.labeled)?)
    } else {
        None
    };
    let input = match &args.titles {
        Some(path) => BenchInput::from_titles(path)?,
        None if own_data_only => BenchInput::empty(
            (relations.as_ref())
                .and_then(|r| r.files["train"].as_str())
                .or(binder.as_ref().map(|b| b.source.as_str()))
                .unwrap_or_default()
                .to_string(),
        ),
        None => BenchInput::from_catalog(&args.data)?,
    };
    let tag_model = args.tag_model.as_deref().map(ModelDir::read).transpose()?;
    // Tagging a given model needs nothing of the base one, whose weights (90 MB for MiniLM), read
    // all the same, would count in the tagging workloads' peak memory.
    let tagging_only = args
        .workloads
        .iter()
        .all(|w| matches!(w, Workload::Tag1 | Workload::Tag32 | Workload::Tag256));
    let base_dir;
    let base = match (&tag_model, tagging_only) {
        (Some(dir), true) => dir,
        _ => {
            base_dir = base_model(args.model.clone())?;
            &base_dir
        }
    };
    let labels = labels();
    let report = Bench {
        base,
        relations: relations.as_ref(),
        binder: binder.as_ref(),
        tag_model: tag_model.as_ref(),
        input: &input,
        labels: &labels,
        options: &args.options,
        device: &device,
        shapes: args.shapes,
        warmup: args.warmup_steps,
        steps: args.steps,
        tag_titles: args.tag_titles,
        tag_titles_batch1: args.tag_titles_batch1.unwrap_or(args.tag_titles),
        repetitions: args.repetitions.max(1),
        matmul: args.matmul.matmul,
        backend: args.backend.backend,
    }
    .run(&args.workloads)?;
    print_bench(&report);
    if let Some(path) = &args.json {
        write_json(path, &report)?;
    }
    Ok(())
}

/// Runs each workload as `trainer bench ... --workloads W --in-process` and merges the reports.
fn run_children(args: &Args) -> Result<()> {
    let exe = std::env::current_exe().context("locating the trainer binary")?;
    let dir = std::env::temp_dir().join(format!("multitag-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut merged: Option<BenchReport> = None;
    for &workload in &args.workloads {
        let name = workload
            .to_possible_value()
            .expect("no skipped variants")
            .get_name()
            .to_string();
        let json = dir.join(format!("{name}.json"));
        let status = std::process::Command::new(&exe)
            .args(child_args(std::env::args_os().skip(1), &name, &json))
            .stdout(std::process::Stdio::null())
            .status()
            .with_context(|| format!("running {}", exe.display()))?;
        if !status.success() {
            let _ = std::fs::remove_dir_all(&dir);
            bail!("the {name} workload failed ({status})");
        }
        let text = std::fs::read_to_string(&json)?;
        let report: BenchReport = serde_json::from_str(&text)
            .with_context(|| format!("{}: unreadable report", json.display()))?;
        match &mut merged {
            None => merged = Some(report),
            Some(m) => m.results.extend(report.results),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let report = merged.context("no workloads")?;
    print_bench(&report);
    if let Some(path) = &args.json {
        write_json(path, &report)?;
    }
    Ok(())
}

/// This process's arguments with `--workloads` and `--json` replaced, and `--in-process` added.
fn child_args(
    args: impl Iterator<Item = std::ffi::OsString>,
    workload: &str,
    json: &std::path::Path,
) -> Vec<std::ffi::OsString> {
    let mut out = Vec::new();
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let text = arg.to_string_lossy();
        if text == "--workloads" || text == "--json" {
            args.next();
        } else if !(text.starts_with("--workloads=")
            || text.starts_with("--json=")
            || text == "--in-process")
        {
            out.push(arg);
        }
    }
    out.extend::<[std::ffi::OsString; 5]>([
        "--workloads".into(),
        workload.into(),
        "--json".into(),
        json.as_os_str().to_owned(),
        "--in-process".into(),
    ]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_arguments_replace_workloads_and_json() {
        let args = [
            "bench",
            "--workloads",
            "tag1,tag32",
            "--json=x.json",
            "--batch-size",
            "16",
        ]
        .map(std::ffi::OsString::from);
        let child = child_args(
            args.into_iter(),
            "tag1",
            std::path::Path::new("/t/tag1.json"),
        );
        assert_eq!(
            child,
            [
                "bench",
                "--batch-size",
                "16",
                "--workloads",
                "tag1",
                "--json",
                "/t/tag1.json",
                "--in-process"
            ]
            .map(std::ffi::OsString::from)
        );
    }
}

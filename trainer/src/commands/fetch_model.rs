//! `trainer fetch-model`: downloads the base model into the cache (or `--dest`).
use std::path::PathBuf;

use anyhow::Result;

use crate::{fetch, settings};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    dest: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    fetch::fetch_base_model(&args.dest.unwrap_or_else(settings::default_base_model))
}

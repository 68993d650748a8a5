//! What the trainer writes: model directories, exports, reports. Every write is atomic: a file is
//! written beside its target and renamed over it; a directory is staged in a hidden sibling
//! (`.<name>.tmp-<pid>`) and swapped in, so a reader sees the old contents or the new, never half.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use candle_nn::VarMap;
use multitag_core::LabelMap;

use crate::model_dir::ModelDir;

/// Writes a trained model directory atomically: everything is staged in `<out>.tmp-<pid>`, then
/// swapped in with renames, so readers see the old model or the new one, never half of one.
pub fn save_model(
    out: &Path,
    varmap: &VarMap,
    base: &ModelDir,
    labels: &LabelMap,
    training: &serde_json::Value,
) -> Result<()> {
    let staged = sibling(out, "tmp");
    if staged.exists() {
        std::fs::remove_dir_all(&staged)?;
    }
    std::fs::create_dir_all(&staged).with_context(|| format!("creating {}", staged.display()))?;
    varmap.save(staged.join("model.safetensors"))?;
    std::fs::write(staged.join("config.json"), &base.config_text)?;
    std::fs::write(staged.join("tokenizer.json"), &base.tokenizer_bytes)?;
    std::fs::write(
        staged.join("labels.json"),
        serde_json::to_string_pretty(labels)?,
    )?;
    std::fs::write(
        staged.join("training.json"),
        serde_json::to_string_pretty(training)?,
    )?;
    replace_dir(&staged, out)
}

/// Moves `staged` to `out`, replacing what was there.
pub fn replace_dir(staged: &Path, out: &Path) -> Result<()> {
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let old = sibling(out, "old");
    if out.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old)?;
        }
        std::fs::rename(out, &old)?;
    }
    std::fs::rename(staged, out)
        .with_context(|| format!("moving {} to {}", staged.display(), out.display()))?;
    if old.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    Ok(())
}

pub fn sibling(path: &Path, tag: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    path.with_file_name(format!(".{name}.{tag}-{}", std::process::id()))
}

/// Writes a file atomically (temp file in the same directory, then rename).
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = sibling(path, "tmp");
    std::fs::write(&tmp, contents).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

/// Writes `value` as the pretty-printed JSON file `path`, atomically ([`write_atomic`]).
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    write_atomic(path, serde_json::to_string_pretty(value)?.as_bytes())
}

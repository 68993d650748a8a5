//! Checkpoints for `--resume`: the variables, the AdamW moments and the loop's state, written
//! whole (staged beside, then swapped in: [`crate::output::swap_dir`]); and in-memory snapshots
//! of the best epoch.
use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use super::TrainOptions;
use crate::optim::AdamW;
use crate::output::{staging_dir, swap_dir};

/// Options a resumed run may change: how many epochs in all, and the early-stopping patience.
/// Any other difference would make the resumed run a different run than the one checkpointed.
const RESUMABLE_CHANGES: [&str; 2] = ["epochs", "patience"];

/// Reads the checkpoint in `dir` and checks that `opts` continue it: every option but
/// [`RESUMABLE_CHANGES`] as stored. Called before any work, so a mismatch costs nothing.
pub fn check_resume(dir: &Path, opts: &TrainOptions) -> Result<CheckpointState> {
    let state_path = dir.join("state.json");
    let text = std::fs::read_to_string(&state_path)
        .with_context(|| format!("no checkpoint to resume from at {}", state_path.display()))?;
    let state: CheckpointState = serde_json::from_str(&text)
        .with_context(|| format!("{}: unreadable", state_path.display()))?;
    let stored = serde_json::to_value(&state.options)?;
    let asked = serde_json::to_value(opts)?;
    let (Some(stored), Some(asked)) = (stored.as_object(), asked.as_object()) else {
        bail!("training options are not a JSON object");
    };
    let differ: Vec<String> = asked
        .iter()
        .filter(|(name, _)| !RESUMABLE_CHANGES.contains(&name.as_str()))
        .filter(|(name, value)| stored.get(*name) != Some(value))
        .map(|(name, value)| {
            let was = stored.get(name).map_or("absent".into(), |v| v.to_string());
            format!("--{} {value} (checkpoint: {was})", name.replace('_', "-"))
        })
        .collect();
    if !differ.is_empty() {
        bail!(
            "--resume: {} was trained with other options: {}. Resume with the checkpoint's \
             options (only --epochs and --patience may change), or train afresh into another --out",
            state_path.display(),
            differ.join(", ")
        );
    }
    Ok(state)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointState {
    pub epochs_done: usize,
    pub step: usize,
    /// The best dev score so far ([`super::Method::dev_score`]: F1 for tagging; the name is
    /// kept so that existing checkpoints resume).
    pub best_dev_f1: f64,
    pub epochs_without_gain: usize,
    pub options: TrainOptions,
}

pub fn snapshot(varmap: &VarMap) -> Result<Vec<(String, Tensor)>> {
    let data = varmap.data().lock().expect("variable map lock");
    data.iter()
        .map(|(name, var)| Ok((name.clone(), var.as_tensor().copy()?)))
        .collect()
}

pub fn snapshot_from_file(path: &Path, device: &Device) -> Result<Vec<(String, Tensor)>> {
    let tensors = candle_core::safetensors::load(path, device)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(tensors.into_iter().collect())
}

pub fn restore(varmap: &VarMap, values: &[(String, Tensor)]) -> Result<()> {
    let data = varmap.data().lock().expect("variable map lock");
    for (name, value) in values {
        if let Some(var) = data.get(name) {
            var.set(value)?;
        }
    }
    Ok(())
}

pub fn save_checkpoint(
    dir: &Path,
    varmap: &VarMap,
    optimizer: &AdamW,
    state: &CheckpointState,
) -> Result<()> {
    let staged = staging_dir(dir)?;
    varmap.save(staged.join("model.safetensors"))?;
    optimizer.save(&staged.join("optimizer.safetensors"))?;
    std::fs::write(
        staged.join("state.json"),
        serde_json::to_string_pretty(state)?,
    )?;
    swap_dir(&staged, dir)
}

pub fn load_checkpoint(
    dir: &Path,
    varmap: &VarMap,
    optimizer: &mut AdamW,
) -> Result<CheckpointState> {
    let state_path = dir.join("state.json");
    let text = std::fs::read_to_string(&state_path)
        .with_context(|| format!("no checkpoint to resume from at {}", state_path.display()))?;
    let state: CheckpointState = serde_json::from_str(&text)
        .with_context(|| format!("{}: unreadable", state_path.display()))?;
    let device = varmap
        .all_vars()
        .first()
        .map(|v| v.device().clone())
        .unwrap_or(Device::Cpu);
    restore(
        varmap,
        &snapshot_from_file(&dir.join("model.safetensors"), &device)?,
    )?;
    optimizer.load(&dir.join("optimizer.safetensors"), state.step)?;
    Ok(state)
}

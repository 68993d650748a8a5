//! Checkpoints for `--resume`: the variables, the AdamW moments and the loop's state, written
//! atomically (staged beside, then swapped in); and in-memory snapshots of the best epoch.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use super::TrainOptions;
use crate::optim::AdamW;

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
    let staged: PathBuf = dir.with_file_name(format!(".checkpoint.tmp-{}", std::process::id()));
    if staged.exists() {
        std::fs::remove_dir_all(&staged)?;
    }
    std::fs::create_dir_all(&staged)?;
    varmap.save(staged.join("model.safetensors"))?;
    optimizer.save(&staged.join("optimizer.safetensors"))?;
    std::fs::write(
        staged.join("state.json"),
        serde_json::to_string_pretty(state)?,
    )?;
    crate::output::replace_dir(&staged, dir)
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

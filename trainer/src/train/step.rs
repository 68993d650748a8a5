//! One training step, owned in one place for `trainer train`, `compare` and `bench`: the task's
//! loss on a batch, the backward pass, and a clipped AdamW update at the step's learning rate.
use std::time::Instant;

use anyhow::Result;
use candle_core::Device;
use candle_nn::VarMap;
use multitag_model::{DropoutRng, Mode, RowGradients, Task};

use crate::optim::{AdamW, AdamWStyle};

/// What one step did: its loss (the total, and the task's named parts in
/// [`Task::loss_parts`]' order), the gradient norm before clipping, and the seconds spent in the
/// forward pass, the backward pass and the optimizer.
pub struct StepReport {
    pub loss: f64,
    pub parts: Vec<f64>,
    pub grad_norm: f64,
    pub phases: [f64; 3],
}

pub struct Stepper {
    pub optimizer: AdamW,
    /// On the CPU, lookups read rows through this, so the word embeddings' gradient is the rows a
    /// batch used ([`RowGradients`]); elsewhere the dense gradient.
    rows: Option<RowGradients>,
    device: Device,
    /// Synchronize the device at each phase boundary, so the phases are timed separately (on an
    /// accelerator work is queued; a benchmark wants each phase's own time, training does not).
    synchronize: bool,
}

impl Stepper {
    pub fn new(varmap: &VarMap, weight_decay: f64, device: &Device) -> Result<Self> {
        Self::with_style(varmap, weight_decay, AdamWStyle::Pytorch, device)
    }

    pub fn with_style(
        varmap: &VarMap,
        weight_decay: f64,
        style: AdamWStyle,
        device: &Device,
    ) -> Result<Self> {
        Ok(Self {
            optimizer: AdamW::with_style(varmap, weight_decay, style)?,
            rows: device.is_cpu().then(RowGradients::default),
            device: device.clone(),
            synchronize: false,
        })
    }

    /// Times each phase on its own (see the field).
    pub fn timed(mut self) -> Self {
        self.synchronize = true;
        self
    }

    /// One step on `batch` (indices into `examples`): `draw(n)` samples what the task samples
    /// (uniform in `0..n`), `dropout` draws the dropout masks.
    #[allow(clippy::too_many_arguments)]
    pub fn step<T: Task>(
        &mut self,
        task: &T,
        examples: &[T::Example],
        batch: &[usize],
        draw: &mut dyn FnMut(usize) -> usize,
        dropout: &DropoutRng,
        lr: f64,
        clip: f64,
    ) -> Result<StepReport> {
        let start = Instant::now();
        let mode = match &self.rows {
            Some(rows) => {
                rows.clear();
                Mode::TrainRows(dropout, rows)
            }
            None => Mode::Train(dropout),
        };
        let losses = task.loss(examples, batch, draw, &mode)?;
        self.boundary()?;
        let forward = start.elapsed().as_secs_f64();
        let grads = losses.total.backward()?;
        self.boundary()?;
        let backward = start.elapsed().as_secs_f64();
        let grad_norm = match &self.rows {
            Some(rows) => self.optimizer.step_rows(&grads, rows, lr, clip)?,
            None => self.optimizer.step(&grads, lr, clip)?,
        };
        let loss = losses.total.to_scalar::<f32>()? as f64;
        let parts = losses
            .parts
            .iter()
            .map(|(_, part)| Ok(part.to_scalar::<f32>()? as f64))
            .collect::<Result<Vec<_>>>()?;
        self.boundary()?;
        let total = start.elapsed().as_secs_f64();
        Ok(StepReport {
            loss,
            parts,
            grad_norm,
            phases: [forward, backward - forward, total - backward],
        })
    }

    fn boundary(&self) -> Result<()> {
        if self.synchronize {
            self.device.synchronize()?;
        }
        Ok(())
    }
}

//! The GPU encoder behind a predictor where nothing may block: a browser's worker.
//!
//! Every predictor ([`multitag_model::Predictor`]) is synchronous: it tokenizes, calls its
//! encoder, and decodes, in one call. Natively the wgpu encoder waits for the GPU inside that call
//! ([`GpuEncoder::forward_blocking`](crate::GpuEncoder)); in a browser it cannot, because the
//! results of a GPU pass arrive through the event loop the call would be blocking. So the worker
//! runs a prediction in stages, and the predictor's code stays the one the CPU path runs:
//!
//! 1. The predictor runs with [`StagedStates`] as its encoder's backend. The backend has no states
//!    for the batch yet: it records what was asked (ids, mask, layers) and fails the call.
//! 2. [`run_staged`] sees the recorded request, awaits the GPU's states for it, and hands them
//!    to the backend.
//! 3. The predictor runs again; this time the backend answers with those states (matched by the
//!    request, so a state can never reach another batch), and the heads and decoding run on them.
//!
//! Each encoder call of a prediction costs one more run of what precedes it (tokenizing), so the
//! caller runs one encoder batch per prediction. What fails on the GPU is returned as such
//! ([`StagedError::Gpu`]), for the caller to run that batch on the CPU instead.
use std::sync::Mutex;

use candle_core::{Device, Result as CandleResult, Tensor};

use crate::encoder::{u32_values, EncoderStates, GpuEncoder};
use crate::error::GpuError;

/// What a predictor asked of its encoder: a `(batch, seq)` right-padded batch and its depths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncoderRequest {
    pub ids: Vec<u32>,
    pub mask: Vec<u32>,
    pub shape: (usize, usize),
    pub layers: usize,
    pub depth: Option<usize>,
}

/// Where the states of a request come from: the GPU encoder, or (in tests) anything else.
#[allow(async_fn_in_trait)] // awaited in place by a single-threaded caller; never spawned
pub trait StatesSource {
    async fn states(&self, request: &EncoderRequest) -> Result<EncoderStates, GpuError>;
}

impl StatesSource for GpuEncoder {
    async fn states(&self, request: &EncoderRequest) -> Result<EncoderStates, GpuError> {
        self.forward(
            &request.ids,
            &request.mask,
            request.shape,
            request.layers,
            request.depth,
        )
        .await
    }
}

#[derive(Default)]
struct Stage {
    /// The request the last run could not answer.
    wanted: Option<EncoderRequest>,
    /// States computed for the requests of the prediction under way.
    ready: Vec<(EncoderRequest, EncoderStates)>,
}

/// An encoder backend that answers with states computed beforehand (module docs).
pub struct StagedStates {
    name: String,
    hidden: usize,
    stage: Mutex<Stage>,
}

impl StagedStates {
    /// `name` says what computes the states (the adapter); `hidden` is the encoder's width.
    pub fn new(name: impl Into<String>, hidden: usize) -> Self {
        Self {
            name: name.into(),
            hidden,
            stage: Mutex::new(Stage::default()),
        }
    }

    fn stage(&self) -> std::sync::MutexGuard<'_, Stage> {
        // The stage holds plain data: a panic elsewhere leaves nothing half-written to fear.
        self.stage.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn clear(&self) {
        *self.stage() = Stage::default();
    }
}

impl multitag_model::EncoderBackend for StagedStates {
    fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        layers: usize,
        depth: Option<usize>,
    ) -> CandleResult<(Tensor, Option<Tensor>)> {
        let shape = input_ids.dims2()?;
        let request = EncoderRequest {
            ids: u32_values(input_ids)?,
            mask: u32_values(attention_mask)?,
            shape,
            layers,
            depth,
        };
        let mut stage = self.stage();
        let Some(at) = stage.ready.iter().position(|(r, _)| *r == request) else {
            stage.wanted = Some(request);
            return Err(candle_core::Error::Msg(format!(
                "the states of this batch are not computed yet ({})",
                self.name
            )));
        };
        // Kept until the prediction ends: its next run asks for this batch again.
        let states = stage.ready[at].1.clone();
        let grid = |values: Vec<f32>| {
            Tensor::from_vec(values, (shape.0, shape.1, self.hidden), &Device::Cpu)
        };
        Ok((grid(states.top)?, states.at_depth.map(grid).transpose()?))
    }

    fn name(&self) -> String {
        self.name.clone()
    }
}

/// A staged prediction's failure: the GPU's (run the batch elsewhere) or the prediction's own.
#[derive(Debug)]
pub enum StagedError<E> {
    Gpu(GpuError),
    Predict(E),
}

/// More encoder batches than one prediction of the browser's ever asks for.
const MAX_BATCHES: usize = 4096;

/// Runs `predict` (a prediction whose encoder's backend is `staged`) until it needs no states
/// that `source` has not computed (module docs). Nothing stays staged afterwards.
pub async fn run_staged<T, E>(
    staged: &StagedStates,
    source: &impl StatesSource,
    mut predict: impl FnMut() -> Result<T, E>,
) -> Result<T, StagedError<E>> {
    staged.clear();
    let mut computed = 0;
    let outcome = loop {
        let result = predict();
        let wanted = staged.stage().wanted.take();
        match (result, wanted) {
            (Ok(value), _) => break Ok(value),
            // A prediction whose requests never repeat (it would not end) stops here.
            (Err(_), Some(_)) if computed == MAX_BATCHES => {
                break Err(StagedError::Gpu(GpuError::Input(format!(
                    "a prediction asked for more than {MAX_BATCHES} encoder batches"
                ))))
            }
            (Err(_), Some(request)) => match source.states(&request).await {
                Ok(states) => {
                    computed += 1;
                    staged.stage().ready.push((request, states));
                }
                Err(e) => break Err(StagedError::Gpu(e)),
            },
            (Err(e), None) => break Err(StagedError::Predict(e)),
        }
    };
    staged.clear();
    outcome
}

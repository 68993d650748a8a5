//! What can go wrong on the GPU path; each is a reason to fall back to the CPU, never a panic.

#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// No adapter (no GPU, no driver, or a browser without WebGPU).
    #[error("no GPU adapter: {0}")]
    NoAdapter(String),
    /// The adapter refused a device with the limits the shaders need.
    #[error("the GPU adapter `{adapter}` gives no device for the encoder: {reason}")]
    Device { adapter: String, reason: String },
    /// A weight is missing or has another shape than the config says.
    #[error("weights: {0}")]
    Weights(String),
    /// The input cannot be run (a sequence longer than the encoder's positions, a mask that is
    /// not right padding).
    #[error("input: {0}")]
    Input(String),
    /// The device reported an error (out of memory, validation, a lost device) or the results
    /// could not be read back.
    #[error("the GPU failed: {0}")]
    Execution(String),
}

impl From<candle_core::Error> for GpuError {
    fn from(e: candle_core::Error) -> Self {
        GpuError::Weights(e.to_string())
    }
}

//! [`GpuEncoder`]: a BERT encoder's weights on the GPU and its forward pass over a batch.
//!
//! Weights are uploaded once: float matrices as f32, an exported model's quantized matrices (the
//! dense layers' and the word table) as their codes, dequantized by the shaders as they read them
//! ([`crate::codes`]: 10 bits a value with 8-bit codes, 6 with 4-bit ones), vectors and the small
//! position table as f32. `MULTITAG_GPU_WEIGHTS=f32` dequantizes every matrix at upload instead,
//! to compare the two. Each layer's query, key and value matrices are stacked into one `(3h, h)`
//! matrix, so a layer is five dispatches: QKV, attention, output projection with residual and
//! layer norm, the GELU feed-forward, and its projection with residual and layer norm. The
//! activations live in buffers kept between batches and grown when a batch has more tokens than
//! any before.
use std::sync::{Arc, Mutex};

use candle_core::quantized::QTensor;
use candle_core::{Result as CandleResult, Tensor};
use multitag_model::BertConfig;
use wgpu::util::DeviceExt;

use crate::codes::Codes;
use crate::context::Gpu;
use crate::error::GpuError;
use crate::kernels::{Activation, Matrix, Plan};

struct Layer {
    qkv: (Matrix, wgpu::Buffer),
    output: (Matrix, wgpu::Buffer),
    attention_norm: (wgpu::Buffer, wgpu::Buffer),
    intermediate: (Matrix, wgpu::Buffer),
    feed_forward: (Matrix, wgpu::Buffer),
    output_norm: (wgpu::Buffer, wgpu::Buffer),
}

/// A weight as its source holds it: a float tensor (any dtype candle converts to f32) or a
/// quantized one (an exported GGUF file's).
pub enum Stored {
    Float(Tensor),
    Quantized(QTensor),
}

impl Stored {
    /// The weight as f32 values (a quantized one dequantized).
    fn into_values(self) -> CandleResult<Vec<f32>> {
        match self {
            Stored::Float(t) => values(&t),
            Stored::Quantized(q) => values(&q.dequantize(&candle_core::Device::Cpu)?),
        }
    }
}

/// A weight matrix read, before upload.
enum HostMatrix {
    F32(Vec<f32>),
    Codes(Codes),
}

impl HostMatrix {
    fn into_values(self) -> Vec<f32> {
        match self {
            HostMatrix::F32(values) => values,
            HostMatrix::Codes(codes) => codes.values(),
        }
    }

    /// The rows of `parts` stacked: as codes when all are codes of one width, else as f32.
    fn stack(parts: Vec<HostMatrix>) -> Result<HostMatrix, GpuError> {
        let mut parts = parts.into_iter();
        let mut stacked = parts.next().unwrap_or(HostMatrix::F32(Vec::new()));
        for part in parts {
            stacked = match (stacked, part) {
                (HostMatrix::Codes(mut above), HostMatrix::Codes(below))
                    if above.bits == below.bits =>
                {
                    above.append(below)?;
                    HostMatrix::Codes(above)
                }
                (above, below) => {
                    HostMatrix::F32([above.into_values(), below.into_values()].concat())
                }
            };
        }
        Ok(stacked)
    }
}

/// Whether quantized matrices go up as their codes (the default) or dequantized to f32
/// (`MULTITAG_GPU_WEIGHTS=f32`).
fn upload_codes() -> Result<bool, GpuError> {
    match std::env::var("MULTITAG_GPU_WEIGHTS").as_deref() {
        Err(_) | Ok("codes") => Ok(true),
        Ok("f32") => Ok(false),
        Ok(other) => Err(GpuError::Weights(format!(
            "MULTITAG_GPU_WEIGHTS is `{other}`: `codes` or `f32`"
        ))),
    }
}

/// The activation buffers of a forward pass, for up to `rows` tokens.
struct Scratch {
    rows: usize,
    tokens: wgpu::Buffer,
    segments: wgpu::Buffer,
    x: wgpu::Buffer,
    y: wgpu::Buffer,
    t: wgpu::Buffer,
    qkv: wgpu::Buffer,
    context: wgpu::Buffer,
    inner: wgpu::Buffer,
    /// Mappable: the top states, then (when asked for) those at depth.
    read: wgpu::Buffer,
}

/// A batch's hidden states as `(batch, seq, hidden)` row-major f32 values, pads as zeros: the top
/// layer's, and those after `depth` layers when asked for.
#[derive(Debug, Clone)]
pub struct EncoderStates {
    pub top: Vec<f32>,
    pub at_depth: Option<Vec<f32>>,
}

pub struct GpuEncoder {
    gpu: Arc<Gpu>,
    pub config: BertConfig,
    word: Matrix,
    position_and_type: wgpu::Buffer,
    embedding_norm: (wgpu::Buffer, wgpu::Buffer),
    layers: Vec<Layer>,
    activation: Activation,
    scratch: Mutex<Option<Scratch>>,
    uniforms: Mutex<Option<wgpu::Buffer>>,
    weight_bytes: u64,
}

/// A `(batch, seq)` tensor of ids or mask values, row-major.
pub(crate) fn u32_values(tensor: &Tensor) -> CandleResult<Vec<u32>> {
    tensor
        .to_dtype(candle_core::DType::U32)?
        .flatten_all()?
        .to_vec1::<u32>()
}

fn values(tensor: &Tensor) -> CandleResult<Vec<f32>> {
    tensor
        .to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()
}

impl GpuEncoder {
    /// The encoder of `config` with its weights from `tensor(name, shape)`, by their names under
    /// the encoder's root, as `embeddings.word_embeddings.weight` or
    /// `encoder.layer.0.attention.self.query.weight` (for an exported file, the GGUF reader's
    /// `qtensor` at the task's prefix).
    pub fn load(
        gpu: Arc<Gpu>,
        config: &BertConfig,
        tensor: impl Fn(&str, &[usize]) -> CandleResult<Stored>,
    ) -> Result<GpuEncoder, GpuError> {
        let (h, inner) = (config.hidden_size, config.intermediate_size);
        if config.num_attention_heads == 0 || h % config.num_attention_heads != 0 {
            return Err(GpuError::Weights(format!(
                "hidden size {h} is not a multiple of {} heads",
                config.num_attention_heads
            )));
        }
        let keep_codes = upload_codes()?;
        let device = &gpu.device;
        let max_binding = gpu.max_binding;
        let uploaded = std::cell::Cell::new(0u64);
        let upload = |name: &str, bytes: &[u8]| -> Result<wgpu::Buffer, GpuError> {
            let size = bytes.len() as u64;
            if size > max_binding {
                return Err(GpuError::Weights(format!(
                    "`{name}` is {size} bytes, more than the {max_binding} bytes this adapter \
                     binds at once"
                )));
            }
            uploaded.set(uploaded.get() + size);
            Ok(
                device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(name),
                    contents: bytes,
                    usage: wgpu::BufferUsages::STORAGE,
                }),
            )
        };
        let upload_values = |name: &str, data: &[f32]| upload(name, bytemuck::cast_slice(data));
        let upload_matrix = |name: &str, matrix: HostMatrix| -> Result<Matrix, GpuError> {
            Ok(match matrix {
                HostMatrix::F32(values) => Matrix::F32(upload_values(name, &values)?),
                HostMatrix::Codes(c) => Matrix::Codes {
                    bits: c.bits,
                    words: upload(name, bytemuck::cast_slice(&c.words))?,
                    factors: upload(&format!("{name} factors"), bytemuck::cast_slice(&c.factors))?,
                },
            })
        };
        let read_matrix = |name: &str, shape: &[usize]| -> Result<HostMatrix, GpuError> {
            let stored = tensor(name, shape)?;
            if let (true, Stored::Quantized(q)) = (keep_codes, &stored) {
                if let Some(codes) = Codes::of(q)? {
                    return Ok(HostMatrix::Codes(codes));
                }
            }
            Ok(HostMatrix::F32(stored.into_values()?))
        };
        let read = |name: &str, shape: &[usize]| -> Result<Vec<f32>, GpuError> {
            Ok(tensor(name, shape)?.into_values()?)
        };
        let vector = |name: &str, len: usize| upload_values(name, &read(name, &[len])?);
        let dense = |prefix: &str, shape: &[usize]| -> Result<_, GpuError> {
            let weight = format!("{prefix}.weight");
            Ok((
                upload_matrix(&weight, read_matrix(&weight, shape)?)?,
                vector(&format!("{prefix}.bias"), shape[0])?,
            ))
        };
        let norm = |prefix: &str| -> Result<_, GpuError> {
            Ok((
                vector(&format!("{prefix}.weight"), h)?,
                vector(&format!("{prefix}.bias"), h)?,
            ))
        };
        let word_name = "embeddings.word_embeddings.weight";
        let word = read_matrix(word_name, &[config.vocab_size, h])?;
        let mut position_and_type = read(
            "embeddings.position_embeddings.weight",
            &[config.max_position_embeddings, h],
        )?;
        let token_type = read(
            "embeddings.token_type_embeddings.weight",
            &[config.type_vocab_size, h],
        )?;
        // Every token has type 0: its row is added to each position's once, here.
        for row in position_and_type.chunks_exact_mut(h) {
            for (v, t) in row.iter_mut().zip(&token_type[..h]) {
                *v += t;
            }
        }
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let at = |name: &str| format!("encoder.layer.{i}.{name}");
                let mut qkv_weight = Vec::with_capacity(3);
                let mut qkv_bias = Vec::with_capacity(3 * h);
                for part in ["query", "key", "value"] {
                    let prefix = at(&format!("attention.self.{part}"));
                    qkv_weight.push(read_matrix(&format!("{prefix}.weight"), &[h, h])?);
                    qkv_bias.extend(read(&format!("{prefix}.bias"), &[h])?);
                }
                Ok(Layer {
                    qkv: (
                        upload_matrix(
                            &at("attention.self.qkv.weight"),
                            HostMatrix::stack(qkv_weight)?,
                        )?,
                        upload_values(&at("attention.self.qkv.bias"), &qkv_bias)?,
                    ),
                    output: dense(&at("attention.output.dense"), &[h, h])?,
                    attention_norm: norm(&at("attention.output.LayerNorm"))?,
                    intermediate: dense(&at("intermediate.dense"), &[inner, h])?,
                    feed_forward: dense(&at("output.dense"), &[h, inner])?,
                    output_norm: norm(&at("output.LayerNorm"))?,
                })
            })
            .collect::<Result<Vec<_>, GpuError>>()?;
        let word = upload_matrix(word_name, word)?;
        let position_and_type = upload_values("embeddings.position_and_type", &position_and_type)?;
        let embedding_norm = norm("embeddings.LayerNorm")?;
        Ok(GpuEncoder {
            word,
            position_and_type,
            embedding_norm,
            layers,
            activation: Activation::of_config(&config.hidden_act),
            config: config.clone(),
            scratch: Mutex::new(None),
            uniforms: Mutex::new(None),
            weight_bytes: uploaded.get(),
            gpu,
        })
    }

    /// Bytes of weights on the GPU.
    pub fn weight_bytes(&self) -> u64 {
        self.weight_bytes
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// The shared handle of the GPU this encoder runs on (for another model on the same device).
    pub fn gpu_handle(&self) -> Arc<Gpu> {
        Arc::clone(&self.gpu)
    }

    /// The hidden states of a right-padded batch after the first `layers` layers: `ids` and
    /// `mask` are `(batch, seq)` row-major (mask 1 = real token, every real token before every
    /// pad of its row), `depth` asks for the states after that many layers too (below `layers`).
    pub async fn forward(
        &self,
        ids: &[u32],
        mask: &[u32],
        (batch, seq): (usize, usize),
        layers: usize,
        depth: Option<usize>,
    ) -> Result<EncoderStates, GpuError> {
        let h = self.config.hidden_size;
        let packed = Packed::new(ids, mask, (batch, seq), &self.config)?;
        let layers = layers.min(self.layers.len());
        let depth = depth.filter(|&d| d < layers);
        let rows = packed.rows();
        if rows == 0 {
            let zeros = vec![0.0; batch * seq * h];
            return Ok(EncoderStates {
                at_depth: depth.map(|_| zeros.clone()),
                top: zeros,
            });
        }
        // Errors of the device (out of memory, validation, a lost device) are caught here and
        // returned, where wgpu's default would panic.
        let validation = self
            .gpu
            .device
            .push_error_scope(wgpu::ErrorFilter::Validation);
        let memory = self
            .gpu
            .device
            .push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let result = self.run(&packed, layers, depth).await;
        let errors = [memory.pop().await, validation.pop().await];
        if let Some(e) = errors.into_iter().flatten().next() {
            return Err(GpuError::Execution(e.to_string()));
        }
        let (top, at_depth) = result?;
        Ok(EncoderStates {
            top: packed.to_grid(&top, h),
            at_depth: at_depth.map(|rows| packed.to_grid(&rows, h)),
        })
    }

    /// The packed rows' top states and those at `depth`. The activation buffers stay locked until
    /// the states are read back: forward passes of one encoder run one at a time (natively each
    /// is waited on; the browser worker sends one batch at a time).
    #[allow(clippy::await_holding_lock)]
    async fn run(
        &self,
        packed: &Packed,
        layers: usize,
        depth: Option<usize>,
    ) -> Result<(Vec<f32>, Option<Vec<f32>>), GpuError> {
        let gpu = &self.gpu;
        let h = self.config.hidden_size;
        let rows = packed.rows();
        let mut scratch = self
            .scratch
            .lock()
            .map_err(|_| GpuError::Execution("a forward pass panicked before".into()))?;
        if scratch.as_ref().is_none_or(|s| s.rows < rows) {
            *scratch = Some(Scratch::new(&gpu.device, &self.config, rows));
        }
        let s = scratch.as_ref().expect("scratch made above");
        gpu.queue
            .write_buffer(&s.tokens, 0, bytemuck::cast_slice(&packed.tokens));
        gpu.queue
            .write_buffer(&s.segments, 0, bytemuck::cast_slice(&packed.segments));
        let (r, hu) = (rows as u32, h as u32);
        let inner = self.config.intermediate_size as u32;
        let heads = self.config.num_attention_heads as u32;
        let eps = self.config.layer_norm_eps as f32;
        let state_bytes = (rows * h * 4) as u64;
        let mut plan = Plan::new(&gpu.kernels);
        plan.embed(
            &s.tokens,
            (&self.word, &self.position_and_type),
            (&self.embedding_norm.0, &self.embedding_norm.1),
            &s.x,
            (r, hu),
            eps,
        );
        for (i, layer) in self.layers[..layers].iter().enumerate() {
            plan.dense(
                &s.x,
                &layer.qkv.0,
                &layer.qkv.1,
                &s.qkv,
                (r, 3 * hu, hu),
                Activation::None,
            );
            plan.attention(&s.qkv, &s.segments, &s.context, r, (heads, hu / heads));
            let output = &layer.output;
            plan.dense(
                &s.context,
                &output.0,
                &output.1,
                &s.t,
                (r, hu, hu),
                Activation::None,
            );
            plan.add_norm(
                (&s.t, &s.x),
                (&layer.attention_norm.0, &layer.attention_norm.1),
                &s.y,
                (r, hu),
                eps,
            );
            let (w, b) = &layer.intermediate;
            plan.dense(&s.y, w, b, &s.inner, (r, inner, hu), self.activation);
            let (w, b) = &layer.feed_forward;
            plan.dense(&s.inner, w, b, &s.t, (r, hu, inner), Activation::None);
            plan.add_norm(
                (&s.t, &s.y),
                (&layer.output_norm.0, &layer.output_norm.1),
                &s.x,
                (r, hu),
                eps,
            );
            // The states at depth go straight to the read-back buffer, after the top's place.
            if depth == Some(i + 1) {
                plan.copy(&s.x, (&s.read, state_bytes), state_bytes);
            }
        }
        plan.copy(&s.x, (&s.read, 0), state_bytes);
        let commands = {
            let mut uniforms = self
                .uniforms
                .lock()
                .map_err(|_| GpuError::Execution("a forward pass panicked before".into()))?;
            plan.record(&gpu.device, &gpu.queue, &mut uniforms)
        };
        gpu.queue.submit([commands]);
        // One mapping for both: the top's states, then those at depth.
        let read_bytes = state_bytes * (1 + depth.is_some() as u64);
        let mut top = read_back(gpu, &s.read, read_bytes).await?;
        let at_depth = depth.map(|_| top.split_off(rows * h));
        Ok((top, at_depth))
    }

    /// [`GpuEncoder::forward`], waited on (natively).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn forward_blocking(
        &self,
        ids: &[u32],
        mask: &[u32],
        shape: (usize, usize),
        layers: usize,
        depth: Option<usize>,
    ) -> Result<EncoderStates, GpuError> {
        pollster::block_on(self.forward(ids, mask, shape, layers, depth))
    }
}

/// Natively the wgpu encoder stands in for the CPU one inside every predictor
/// ([`BertEncoder::set_backend`](multitag_model::BertEncoder::set_backend)); its errors reach
/// the caller as candle errors naming the GPU.
#[cfg(not(target_arch = "wasm32"))]
impl multitag_model::EncoderBackend for GpuEncoder {
    fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        layers: usize,
        depth: Option<usize>,
    ) -> CandleResult<(Tensor, Option<Tensor>)> {
        let (batch, seq) = input_ids.dims2()?;
        let states = self
            .forward_blocking(
                &u32_values(input_ids)?,
                &u32_values(attention_mask)?,
                (batch, seq),
                layers,
                depth,
            )
            .map_err(|e| candle_core::Error::Msg(format!("{} ({})", e, self.gpu.adapter())))?;
        let shape = (batch, seq, self.config.hidden_size);
        let grid = |values: Vec<f32>| Tensor::from_vec(values, shape, &candle_core::Device::Cpu);
        Ok((grid(states.top)?, states.at_depth.map(grid).transpose()?))
    }

    fn name(&self) -> String {
        format!("wgpu: {}", self.gpu.adapter())
    }
}

/// The first `bytes` of a mappable buffer, as f32 values.
async fn read_back(gpu: &Gpu, buffer: &wgpu::Buffer, bytes: u64) -> Result<Vec<f32>, GpuError> {
    let slice = buffer.slice(..bytes);
    let mapped = Mapped::default();
    let done = mapped.clone();
    slice.map_async(wgpu::MapMode::Read, move |result| done.finish(result));
    // Natively this waits for the work and runs the callback; in a browser the callback runs
    // from the event loop, which the await below yields to.
    let _ = gpu.device.poll(wgpu::PollType::wait_indefinitely());
    mapped
        .await
        .map_err(|e| GpuError::Execution(format!("reading the states back: {e}")))?;
    let values = {
        let view = slice
            .get_mapped_range()
            .map_err(|e| GpuError::Execution(format!("reading the states back: {e}")))?;
        bytemuck::cast_slice::<u8, f32>(&view).to_vec()
    };
    buffer.unmap();
    Ok(values)
}

type MapOutcome = Result<(), wgpu::BufferAsyncError>;

/// A buffer mapping's outcome as a future: the map callback stores it and wakes the task that
/// awaits it (a one-shot channel; the browser's event loop runs the callback).
#[derive(Clone, Default)]
struct Mapped(Arc<Mutex<(Option<MapOutcome>, Option<std::task::Waker>)>>);

impl Mapped {
    fn finish(&self, outcome: MapOutcome) {
        let mut state = self.0.lock().unwrap_or_else(|p| p.into_inner());
        state.0 = Some(outcome);
        if let Some(waker) = state.1.take() {
            waker.wake();
        }
    }
}

impl std::future::Future for Mapped {
    type Output = MapOutcome;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<MapOutcome> {
        let mut state = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match state.0.take() {
            Some(outcome) => std::task::Poll::Ready(outcome),
            None => {
                state.1 = Some(cx.waker().clone());
                std::task::Poll::Pending
            }
        }
    }
}

/// A right-padded batch as packed rows: each real token's id and position, each row's sequence
/// (first row, length), and where each row goes back in the `(batch, seq)` grid.
struct Packed {
    tokens: Vec<u32>,
    segments: Vec<u32>,
    cells: Vec<usize>,
    grid: usize,
}

impl Packed {
    fn new(
        ids: &[u32],
        mask: &[u32],
        (batch, seq): (usize, usize),
        config: &BertConfig,
    ) -> Result<Packed, GpuError> {
        if ids.len() != batch * seq || mask.len() != batch * seq {
            return Err(GpuError::Input(format!(
                "{} ids and {} mask values for a ({batch}, {seq}) batch",
                ids.len(),
                mask.len()
            )));
        }
        if seq > config.max_position_embeddings {
            return Err(GpuError::Input(format!(
                "sequences of {seq} sub-words, more than the encoder's {} positions",
                config.max_position_embeddings
            )));
        }
        let mut packed = Packed {
            tokens: Vec::new(),
            segments: Vec::new(),
            cells: Vec::new(),
            grid: batch * seq,
        };
        for b in 0..batch {
            let lane = &mask[b * seq..(b + 1) * seq];
            let len = lane.iter().take_while(|&&m| m != 0).count();
            if lane[len..].iter().any(|&m| m != 0) {
                return Err(GpuError::Input(format!(
                    "row {b} of the mask is not right padding"
                )));
            }
            let first = packed.cells.len() as u32;
            for t in 0..len {
                let id = ids[b * seq + t];
                if id as usize >= config.vocab_size {
                    return Err(GpuError::Input(format!(
                        "token id {id} at row {b}, position {t}: the vocabulary has {} entries",
                        config.vocab_size
                    )));
                }
                packed.tokens.extend([id, t as u32]);
                packed.segments.extend([first, len as u32]);
                packed.cells.push(b * seq + t);
            }
        }
        Ok(packed)
    }

    fn rows(&self) -> usize {
        self.cells.len()
    }

    fn to_grid(&self, rows: &[f32], h: usize) -> Vec<f32> {
        let mut grid = vec![0.0; self.grid * h];
        for (row, &cell) in self.cells.iter().enumerate() {
            grid[cell * h..(cell + 1) * h].copy_from_slice(&rows[row * h..(row + 1) * h]);
        }
        grid
    }
}

impl Scratch {
    fn new(device: &wgpu::Device, config: &BertConfig, rows: usize) -> Scratch {
        // Room to grow by half again, so batches of slowly rising length reallocate rarely.
        let rows = rows + rows / 2;
        let h = config.hidden_size;
        let storage = |name: &str, values: usize, extra: wgpu::BufferUsages| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(name),
                size: (values.max(1) * 4) as u64,
                usage: wgpu::BufferUsages::STORAGE | extra,
                mapped_at_creation: false,
            })
        };
        let none = wgpu::BufferUsages::empty();
        Scratch {
            rows,
            tokens: storage("tokens", 2 * rows, wgpu::BufferUsages::COPY_DST),
            segments: storage("segments", 2 * rows, wgpu::BufferUsages::COPY_DST),
            x: storage("x", rows * h, wgpu::BufferUsages::COPY_SRC),
            y: storage("y", rows * h, none),
            t: storage("t", rows * h, none),
            qkv: storage("qkv", rows * 3 * h, none),
            context: storage("context", rows * h, none),
            inner: storage("inner", rows * config.intermediate_size, none),
            read: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("read back"),
                size: (2 * rows * h * 4) as u64,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
        }
    }
}

//! The encoder's compute pipelines (WGSL in `shaders/`, each with its contract in its header) and
//! a [`Plan`]: the dispatches and copies of one forward pass, their parameters packed into one
//! uniform buffer, recorded into one command buffer.
use std::borrow::Cow;
use std::num::NonZeroU64;

use bytemuck::{Pod, Zeroable};

/// Each dispatch's parameters start at a multiple of this (WebGPU's largest
/// `minUniformBufferOffsetAlignment`).
const SLOT: u64 = 256;

/// Row kernels run a workgroup per row, `ROWS_PER_Z` along x and the rest along z, under the
/// 65,535 workgroups a dimension allows.
const ROWS_PER_Z: u32 = 32_768;

/// The dense kernel's output tile (`shaders/dense.wgsl`).
const TILE: u32 = 64;

pub(crate) struct Kernels {
    dense: ByWeights,
    attention: wgpu::ComputePipeline,
    add_norm: wgpu::ComputePipeline,
    embed: ByWeights,
}

/// A kernel that reads a weight matrix, built for each way the matrix can be stored.
struct ByWeights {
    f32: wgpu::ComputePipeline,
    codes: wgpu::ComputePipeline,
}

/// A weight matrix on the GPU: f32 values, or quantized codes dequantized as they are read
/// ([`crate::codes`]).
pub(crate) enum Matrix {
    F32(wgpu::Buffer),
    Codes {
        bits: u32,
        words: wgpu::Buffer,
        factors: wgpu::Buffer,
    },
}

impl Matrix {
    /// The pipeline of `kernel` that reads this matrix, the buffers to bind from binding 2 on
    /// (the factors go last: the caller binds them after its own), and the bits per code.
    fn bind<'a>(
        &'a self,
        kernel: &'a ByWeights,
    ) -> (
        &'a wgpu::ComputePipeline,
        &'a wgpu::Buffer,
        Option<&'a wgpu::Buffer>,
        u32,
    ) {
        match self {
            Matrix::F32(values) => (&kernel.f32, values, None, 0),
            Matrix::Codes {
                bits,
                words,
                factors,
            } => (&kernel.codes, words, Some(factors), *bits),
        }
    }
}

impl Kernels {
    pub(crate) fn new(device: &wgpu::Device) -> Self {
        let pipeline = |name: &str, source: String| {
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(name),
                source: wgpu::ShaderSource::Wgsl(Cow::Owned(source)),
            });
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(name),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        // The row kernels share their workgroup reductions (WGSL has no includes).
        const REDUCE: &str = include_str!("shaders/row_reduce.wgsl");
        // A kernel reading a weight matrix gets its `weight(i)` from one of two headers; the
        // factors of codes are bound after the kernel's own buffers (`factors`).
        let by_weights = |name: &str, body: &str, factors: u32| ByWeights {
            f32: pipeline(
                name,
                format!("{}{body}", include_str!("shaders/weights_f32.wgsl")),
            ),
            codes: pipeline(
                name,
                include_str!("shaders/weights_codes.wgsl").replace("FACTORS", &factors.to_string())
                    + body,
            ),
        };
        Kernels {
            dense: by_weights("dense", include_str!("shaders/dense.wgsl"), 5),
            attention: pipeline(
                "attention",
                format!("{REDUCE}{}", include_str!("shaders/attention.wgsl")),
            ),
            add_norm: pipeline(
                "add_norm",
                format!("{REDUCE}{}", include_str!("shaders/add_norm.wgsl")),
            ),
            embed: by_weights(
                "embed",
                &format!("{REDUCE}{}", include_str!("shaders/embed.wgsl")),
                7,
            ),
        }
    }
}

/// The activation a dense layer applies (`act` in `shaders/dense.wgsl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    None = 0,
    /// GELU with erf (BERT's `gelu`).
    GeluErf = 1,
    /// GELU's tanh approximation (`gelu_new`, `gelu_pytorch_tanh`).
    GeluTanh = 2,
    Relu = 3,
}

impl Activation {
    /// The activation of a Hugging Face `hidden_act`, as the CPU encoder reads it.
    pub fn of_config(name: &str) -> Self {
        match name {
            "relu" => Activation::Relu,
            "gelu_new" | "gelu_pytorch_tanh" => Activation::GeluTanh,
            _ => Activation::GeluErf,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct DenseParams {
    m: u32,
    n: u32,
    k: u32,
    act: u32,
    bits: u32,
    pad: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct AttentionParams {
    rows: u32,
    heads: u32,
    head_dim: u32,
    hidden: u32,
    scale: f32,
    rows_per_z: u32,
    pad: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct RowParams {
    rows: u32,
    width: u32,
    eps: f32,
    rows_per_z: u32,
    /// Bits per code of the embedding kernel's word table (unused by the others).
    bits: u32,
    pad: [u32; 3],
}

enum Step<'a> {
    Dispatch {
        pipeline: &'a wgpu::ComputePipeline,
        params: u64,
        size: u64,
        buffers: Vec<&'a wgpu::Buffer>,
        groups: [u32; 3],
    },
    Copy {
        from: &'a wgpu::Buffer,
        to: (&'a wgpu::Buffer, u64),
        bytes: u64,
    },
}

/// The steps of one forward pass, in order.
pub(crate) struct Plan<'a> {
    kernels: &'a Kernels,
    params: Vec<u8>,
    steps: Vec<Step<'a>>,
}

fn row_groups(rows: u32, y: u32) -> [u32; 3] {
    [
        rows.clamp(1, ROWS_PER_Z),
        y,
        rows.div_ceil(ROWS_PER_Z).max(1),
    ]
}

impl<'a> Plan<'a> {
    pub(crate) fn new(kernels: &'a Kernels) -> Self {
        Plan {
            kernels,
            params: Vec::new(),
            steps: Vec::new(),
        }
    }

    fn push_params<T: Pod>(&mut self, params: &T) -> (u64, u64) {
        let offset = self.params.len() as u64;
        let bytes = bytemuck::bytes_of(params);
        self.params.extend_from_slice(bytes);
        self.params.resize((offset + SLOT) as usize, 0);
        (offset, bytes.len() as u64)
    }

    fn dispatch<T: Pod>(
        &mut self,
        pipeline: &'a wgpu::ComputePipeline,
        params: &T,
        buffers: Vec<&'a wgpu::Buffer>,
        groups: [u32; 3],
    ) {
        let (params, size) = self.push_params(params);
        self.steps.push(Step::Dispatch {
            pipeline,
            params,
            size,
            buffers,
            groups,
        });
    }

    /// `y (m, n) = act(x (m, k) · w (n, k)ᵀ + b)`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn dense(
        &mut self,
        x: &'a wgpu::Buffer,
        w: &'a Matrix,
        b: &'a wgpu::Buffer,
        y: &'a wgpu::Buffer,
        (m, n, k): (u32, u32, u32),
        act: Activation,
    ) {
        let (pipeline, w, factors, bits) = w.bind(&self.kernels.dense);
        let params = DenseParams {
            m,
            n,
            k,
            act: act as u32,
            bits,
            pad: [0; 3],
        };
        let groups = [n.div_ceil(TILE), m.div_ceil(TILE).max(1), 1];
        let mut buffers = vec![x, w, b, y];
        buffers.extend(factors);
        self.dispatch(pipeline, &params, buffers, groups);
    }

    /// Attention of `rows` packed rows of `qkv` (query, key, value side by side) into `out`.
    pub(crate) fn attention(
        &mut self,
        qkv: &'a wgpu::Buffer,
        segments: &'a wgpu::Buffer,
        out: &'a wgpu::Buffer,
        rows: u32,
        (heads, head_dim): (u32, u32),
    ) {
        let params = AttentionParams {
            rows,
            heads,
            head_dim,
            hidden: heads * head_dim,
            scale: 1.0 / (head_dim as f32).sqrt(),
            rows_per_z: ROWS_PER_Z,
            pad: [0; 2],
        };
        let groups = row_groups(rows, heads);
        self.dispatch(
            &self.kernels.attention,
            &params,
            vec![qkv, segments, out],
            groups,
        );
    }

    /// `out = LayerNorm(x + residual)` over rows of `width`.
    pub(crate) fn add_norm(
        &mut self,
        (x, residual): (&'a wgpu::Buffer, &'a wgpu::Buffer),
        norm: (&'a wgpu::Buffer, &'a wgpu::Buffer),
        out: &'a wgpu::Buffer,
        shape: (u32, u32),
        eps: f32,
    ) {
        let kernel = &self.kernels.add_norm;
        self.layer_norm_rows(kernel, [x, residual], norm, out, None, (shape, eps, 0));
    }

    /// The embeddings of packed rows (`tokens`: id and position of each).
    pub(crate) fn embed(
        &mut self,
        tokens: &'a wgpu::Buffer,
        (word, position_and_type): (&'a Matrix, &'a wgpu::Buffer),
        norm: (&'a wgpu::Buffer, &'a wgpu::Buffer),
        out: &'a wgpu::Buffer,
        shape: (u32, u32),
        eps: f32,
    ) {
        let (pipeline, word, factors, bits) = word.bind(&self.kernels.embed);
        let inputs = [tokens, word, position_and_type];
        self.layer_norm_rows(pipeline, inputs, norm, out, factors, (shape, eps, bits));
    }

    /// A row kernel ending in a layer norm: its inputs, then gamma, beta, the output and (for a
    /// quantized table) its factors bound in that order, a workgroup per row.
    fn layer_norm_rows<const N: usize>(
        &mut self,
        pipeline: &'a wgpu::ComputePipeline,
        inputs: [&'a wgpu::Buffer; N],
        (gamma, beta): (&'a wgpu::Buffer, &'a wgpu::Buffer),
        out: &'a wgpu::Buffer,
        factors: Option<&'a wgpu::Buffer>,
        ((rows, width), eps, bits): ((u32, u32), f32, u32),
    ) {
        let params = RowParams {
            rows,
            width,
            eps,
            rows_per_z: ROWS_PER_Z,
            bits,
            pad: [0; 3],
        };
        let mut buffers = inputs.to_vec();
        buffers.extend([gamma, beta, out]);
        buffers.extend(factors);
        self.dispatch(pipeline, &params, buffers, row_groups(rows, 1));
    }

    /// The first `bytes` of `from` into `to` at an offset.
    pub(crate) fn copy(&mut self, from: &'a wgpu::Buffer, to: (&'a wgpu::Buffer, u64), bytes: u64) {
        self.steps.push(Step::Copy { from, to, bytes });
    }

    /// The plan as one command buffer; `uniforms` receives the parameters (grown when short).
    pub(crate) fn record(
        self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        uniforms: &mut Option<wgpu::Buffer>,
    ) -> wgpu::CommandBuffer {
        let needed = (self.params.len() as u64).max(SLOT);
        if uniforms.as_ref().is_none_or(|u| u.size() < needed) {
            *uniforms = Some(device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("dispatch parameters"),
                size: needed.next_power_of_two(),
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }));
        }
        let uniforms = uniforms.as_ref().expect("uniform buffer made above");
        queue.write_buffer(uniforms, 0, &self.params);
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("encoder forward"),
        });
        let mut pass: Option<wgpu::ComputePass<'static>> = None;
        for step in &self.steps {
            match step {
                Step::Dispatch {
                    pipeline,
                    params,
                    size,
                    buffers,
                    groups,
                } => {
                    let mut entries = vec![wgpu::BindGroupEntry {
                        binding: 0,
                        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer: uniforms,
                            offset: *params,
                            size: NonZeroU64::new(*size),
                        }),
                    }];
                    entries.extend(buffers.iter().enumerate().map(|(i, buffer)| {
                        wgpu::BindGroupEntry {
                            binding: i as u32 + 1,
                            resource: buffer.as_entire_binding(),
                        }
                    }));
                    let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                        label: None,
                        layout: &pipeline.get_bind_group_layout(0),
                        entries: &entries,
                    });
                    let pass = pass.get_or_insert_with(|| {
                        encoder
                            .begin_compute_pass(&wgpu::ComputePassDescriptor {
                                label: None,
                                timestamp_writes: None,
                            })
                            .forget_lifetime()
                    });
                    pass.set_pipeline(pipeline);
                    pass.set_bind_group(0, &group, &[]);
                    pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
                }
                Step::Copy { from, to, bytes } => {
                    drop(pass.take());
                    encoder.copy_buffer_to_buffer(from, 0, to.0, to.1, *bytes);
                }
            }
        }
        drop(pass);
        encoder.finish()
    }
}

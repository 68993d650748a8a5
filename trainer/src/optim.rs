//! AdamW (Loshchilov & Hutter, PyTorch's formulation) with global-norm gradient clipping and a
//! linear warm-up/decay schedule. Written here rather than taken from candle-nn because a
//! `--resume` must restore the moment estimates, which candle-nn's optimizer keeps private.
//!
//! On CPU (f32, contiguous) the update is one pass per parameter, in place and without
//! allocation: the parameter, its gradient and its two moments, the moments interleaved in one
//! host buffer ([`Moments::Host`]), so the pass reads four streams and writes three. Before it,
//! one pass over the gradients gives the clipping norm. The optimizer is memory traffic only;
//! three passes (each moment, then the parameter) took half as long again as one (a SpERT step's
//! optimizer phase: 43.7 against 28.5 ms), and the tensor-op formulation (about 17 temporaries
//! the size of each parameter) far more.
//!
//! Half of MiniLM's parameters are the 30k x 384 word embeddings, of which a batch reads a few
//! hundred rows. Where they were read through [`RowGradients`] ([`AdamW::step_rows`]) their
//! gradient is those rows ([`SparseRows`]): the norm sums them in the dense form's groups and
//! [`RowStep`] updates every row of the table, the others from a zero held rather than read, so
//! the result is the dense update's to the bit (as PyTorch's dense AdamW: every row's moments
//! decay each step; `SparseAdam` would skip them). The 47 MB dense gradient is never built
//! (a SpERT step: 18.4 -> 23.4 sentences/s, backward 50.8 -> 40 ms, optimizer 31.9 -> 22 ms).
//!
//! On CUDA the moments stay tensors and in-place kernels update them (`multitag_model::cuda`,
//! where switched on); other devices keep the tensor-op path.
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context, Result};
use candle_core::backprop::GradStore;
#[cfg(feature = "cuda")]
use candle_core::InplaceOp3;
use candle_core::{CpuStorage, Device, InplaceOp1, InplaceOp2, Layout, Tensor, Var};

use candle_nn::VarMap;
use multitag_model::{RowGradients, SparseRows};
use rayon::prelude::*;

/// Elements per parallel task of the in-place updates: large parameters (the word embeddings) are
/// split over the cores, small ones stay one task.
const CHUNK: usize = 1 << 16;

/// Which AdamW and schedule: PyTorch's `torch.optim.AdamW` (bias-corrected moments, eps 1e-8,
/// every parameter decayed) with this project's schedule ([`learning_rate`]), or what SpERT trains
/// with (lavis-nlp/spert `spert_trainer.py`): transformers' `AdamW(correct_bias=False)` (eps 1e-6,
/// the weight decayed after the update), no weight decay on biases and layer-norm weights (its
/// `_get_optimizer_params`), and transformers' `get_linear_schedule_with_warmup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AdamWStyle {
    #[default]
    Pytorch,
    Spert,
}

impl AdamWStyle {
    /// The learning rate of step `step` (from 0) of `total`, `warmup` the warm-up fraction.
    pub fn learning_rate(self, base: f64, step: usize, total: usize, warmup: f64) -> f64 {
        match self {
            AdamWStyle::Pytorch => learning_rate(base, step, total, warmup),
            AdamWStyle::Spert => linear_schedule_with_warmup(base, step, total, warmup),
        }
    }

    fn eps(self) -> f64 {
        match self {
            AdamWStyle::Pytorch => 1e-8,
            AdamWStyle::Spert => 1e-6,
        }
    }

    fn decays(self, name: &str) -> bool {
        match self {
            AdamWStyle::Pytorch => true,
            AdamWStyle::Spert => !(name.ends_with(".bias") || name.contains("LayerNorm.")),
        }
    }
}

pub struct AdamW {
    params: Vec<Param>,
    style: AdamWStyle,
    pub step: usize,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
}

struct Param {
    name: String,
    /// Whether weight decay applies ([`AdamWStyle`]).
    decays: bool,
    var: Var,
    moments: Moments,
}

/// AdamW's moment estimates of one parameter.
enum Moments {
    /// Tensors beside the parameter: the tensor-op path, and CUDA's in-place kernels.
    Tensors { m: Tensor, v: Tensor },
    /// A contiguous f32 parameter on the CPU: `m` and `v` interleaved (`[m0, v0, m1, v1, ...]`),
    /// updated with the parameter in one pass ([`FusedStep`]). The lock is never contended (one
    /// step at a time); it is how a candle in-place op, which gets `&self`, writes a second
    /// buffer.
    Host(Mutex<Vec<f32>>),
}

impl Moments {
    fn zeros(var: &Var) -> Result<Self> {
        let t = var.as_tensor();
        Ok(
            if t.device().is_cpu() && t.dtype() == candle_core::DType::F32 {
                Moments::Host(Mutex::new(vec![0.0; 2 * t.elem_count()]))
            } else {
                Moments::Tensors {
                    m: t.zeros_like()?,
                    v: t.zeros_like()?,
                }
            },
        )
    }

    /// `m` and `v` as tensors shaped like `like`.
    fn tensors(&self, like: &Tensor) -> Result<(Tensor, Tensor)> {
        match self {
            Moments::Tensors { m, v } => Ok((m.clone(), v.clone())),
            Moments::Host(mv) => {
                let mv = mv.lock().expect("moments lock");
                let m: Vec<f32> = mv.iter().step_by(2).copied().collect();
                let v: Vec<f32> = mv.iter().skip(1).step_by(2).copied().collect();
                Ok((
                    Tensor::from_vec(m, like.shape(), like.device())?,
                    Tensor::from_vec(v, like.shape(), like.device())?,
                ))
            }
        }
    }

    /// Replaces the moments (a checkpoint's, or the tensor-op path's result).
    fn set(&mut self, m: Tensor, v: Tensor) -> Result<()> {
        match self {
            Moments::Tensors { m: mm, v: vv } => {
                *mm = m;
                *vv = v;
            }
            Moments::Host(mv) => {
                let m = m
                    .flatten_all()?
                    .to_dtype(candle_core::DType::F32)?
                    .to_vec1::<f32>()?;
                let v = v
                    .flatten_all()?
                    .to_dtype(candle_core::DType::F32)?
                    .to_vec1::<f32>()?;
                let mv = mv.get_mut().expect("moments lock");
                if m.len() * 2 != mv.len() || v.len() * 2 != mv.len() {
                    anyhow::bail!("moment sizes differ from the parameter's");
                }
                for (i, (m, v)) in m.into_iter().zip(v).enumerate() {
                    mv[2 * i] = m;
                    mv[2 * i + 1] = v;
                }
            }
        }
        Ok(())
    }
}

impl AdamW {
    pub fn with_style(varmap: &VarMap, weight_decay: f64, style: AdamWStyle) -> Result<Self> {
        let data = varmap.data().lock().expect("variable map lock");
        let mut params: Vec<Param> = data
            .iter()
            .map(|(name, var)| {
                Ok(Param {
                    decays: style.decays(name),
                    name: name.clone(),
                    var: var.clone(),
                    moments: Moments::zeros(var)?,
                })
            })
            .collect::<Result<_>>()?;
        // A fixed order keeps the float summation in the clipping norm identical between runs.
        params.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Self {
            params,
            style,
            step: 0,
            beta1: 0.9,
            beta2: 0.999,
            eps: style.eps(),
            weight_decay,
        })
    }

    /// One update; returns the gradient norm before clipping.
    pub fn step(&mut self, grads: &GradStore, lr: f64, max_norm: f64) -> Result<f64> {
        self.step_with(grads, None, lr, max_norm, true)
    }

    /// One update where lookup tables may have been read through `rows`
    /// ([`Mode::TrainRows`](multitag_model::Mode)): their gradients are the rows read, and the
    /// update is the same as from the dense gradient (zero elsewhere).
    pub fn step_rows(
        &mut self,
        grads: &GradStore,
        rows: &RowGradients,
        lr: f64,
        max_norm: f64,
    ) -> Result<f64> {
        self.step_with(grads, Some(rows), lr, max_norm, true)
    }

    /// Each parameter's gradient, in `self.params`' order.
    fn gradients(&self, grads: &GradStore, rows: Option<&RowGradients>) -> Result<Vec<Grad>> {
        self.params
            .iter()
            .map(|p| {
                let dense = grads.get(&p.var).cloned();
                let sparse = match rows {
                    Some(rows) if p.var.rank() == 2 => rows.take(p.var.as_tensor(), grads)?,
                    _ => None,
                };
                Ok(match (dense, sparse) {
                    (None, None) => Grad::None,
                    (Some(g), None) => Grad::Dense(g),
                    (None, Some(r)) => Grad::Rows(r),
                    (Some(_), Some(_)) => anyhow::bail!(
                        "{}: read both as a whole and by rows in one step; its gradient would \
                         be split",
                        p.name
                    ),
                })
            })
            .collect()
    }

    /// `allow_fused: false` forces the tensor-op path (the reference the fused one is tested on).
    fn step_with(
        &mut self,
        grads: &GradStore,
        rows: Option<&RowGradients>,
        lr: f64,
        max_norm: f64,
        allow_fused: bool,
    ) -> Result<f64> {
        let mut gradients = self.gradients(grads, rows)?;
        let fused = allow_fused && self.params.iter().all(|p| fusable(p.var.as_tensor()));
        let on_cpu = self.params.iter().all(|p| p.var.device().is_cpu());
        if !(fused && on_cpu) {
            // Row gradients are a CPU saving; elsewhere they become dense again.
            for (g, p) in gradients.iter_mut().zip(&self.params) {
                if let Grad::Rows(r) = g {
                    *g = Grad::Dense(r.to_dense(p.var.dim(0)?, p.var.device())?);
                }
            }
        }
        let norm = if fused && on_cpu {
            grad_norm_cpu(&self.params, &gradients)?
        } else {
            grad_norm_tensors(&gradients)?
        };
        let scale = if max_norm > 0.0 && norm > max_norm {
            max_norm / (norm + 1e-6)
        } else {
            1.0
        };
        self.step += 1;
        let t = self.step as i32;
        let (bias1, bias2) = match self.style {
            AdamWStyle::Pytorch => (1.0 - self.beta1.powi(t), 1.0 - self.beta2.powi(t)),
            AdamWStyle::Spert => (1.0, 1.0),
        };
        for (p, g) in self.params.iter_mut().zip(gradients) {
            let weight_decay = if p.decays { self.weight_decay } else { 0.0 };
            let decay = 1.0 - lr * weight_decay;
            // transformers decays after the update: (p - lr·u)·decay = p·decay - (lr·decay)·u.
            let step_lr = match self.style {
                AdamWStyle::Pytorch => lr,
                AdamWStyle::Spert => lr * decay,
            };
            let hyper = Hyper {
                beta1: self.beta1 as f32,
                beta2: self.beta2 as f32,
                scale: scale as f32,
                decay: decay as f32,
                lr: step_lr as f32,
                bias1: bias1 as f32,
                bias2: bias2 as f32,
                eps: self.eps as f32,
            };
            let g = match g {
                Grad::None => continue,
                Grad::Rows(rows) => {
                    let Moments::Host(mv) = &p.moments else {
                        unreachable!("row gradients are made dense off the fused CPU path")
                    };
                    let op = RowStep {
                        hyper,
                        moments: mv,
                        rows: &rows,
                    };
                    p.var.as_tensor().inplace_op1(&op)?;
                    continue;
                }
                Grad::Dense(g) => g,
            };
            if fused && fusable(&g) {
                match &p.moments {
                    Moments::Host(mv) => {
                        let g = g.contiguous()?;
                        p.var
                            .as_tensor()
                            .inplace_op2(&g, &FusedStep { hyper, moments: mv })?;
                        continue;
                    }
                    #[cfg(feature = "cuda")]
                    Moments::Tensors { m, v } if fusable(m) && fusable(v) => {
                        let g = g.contiguous()?;
                        m.inplace_op2(&g, &Moment::first(&hyper))?;
                        v.inplace_op2(&g, &Moment::second(&hyper))?;
                        p.var.as_tensor().inplace_op3(m, v, &Update(hyper))?;
                        continue;
                    }
                    Moments::Tensors { .. } => {}
                }
            }
            let (m, v) = p.moments.tensors(p.var.as_tensor())?;
            let g = (g * scale)?;
            let m = ((&m * self.beta1)? + (&g * (1.0 - self.beta1))?)?;
            let v = ((&v * self.beta2)? + (g.sqr()? * (1.0 - self.beta2))?)?;
            let update = ((&m / bias1)? / ((&v / bias2)?.sqrt()? + self.eps)?)?;
            let decayed = (p.var.as_tensor() * decay)?;
            p.var.set(&(decayed - (update * step_lr)?)?)?;
            p.moments.set(m, v)?;
        }
        Ok(norm)
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors = HashMap::new();
        for p in &self.params {
            let (m, v) = p.moments.tensors(p.var.as_tensor())?;
            tensors.insert(format!("m.{}", p.name), m);
            tensors.insert(format!("v.{}", p.name), v);
        }
        candle_core::safetensors::save(&tensors, path)?;
        Ok(())
    }

    pub fn load(&mut self, path: &Path, step: usize) -> Result<()> {
        let device = self
            .params
            .first()
            .map(|p| p.var.device().clone())
            .unwrap_or(candle_core::Device::Cpu);
        let tensors = candle_core::safetensors::load(path, &device)
            .with_context(|| format!("{}: unreadable optimizer state", path.display()))?;
        for p in &mut self.params {
            let [m, v] = ["m", "v"].map(|kind| {
                let key = format!("{kind}.{}", p.name);
                tensors
                    .get(&key)
                    .cloned()
                    .with_context(|| format!("{}: no `{key}`", path.display()))
            });
            p.moments
                .set(m?, v?)
                .with_context(|| format!("{}: `{}`", path.display(), p.name))?;
        }
        self.step = step;
        Ok(())
    }
}

/// One parameter's gradient in a step.
enum Grad {
    None,
    Dense(Tensor),
    Rows(SparseRows),
}

fn grad_norm_tensors(gradients: &[Grad]) -> Result<f64> {
    let mut squares = Vec::with_capacity(gradients.len());
    for g in gradients {
        if let Grad::Dense(g) = g {
            squares.push(g.sqr()?.sum_all()?);
        }
    }
    Ok(if squares.is_empty() {
        0.0
    } else {
        Tensor::stack(&squares, 0)?
            .sum_all()?
            .to_scalar::<f32>()?
            .sqrt() as f64
    })
}

/// Elements per partial sum of the clipping norm on the CPU.
const NORM_CHUNK: usize = 4096;

/// The global gradient norm read straight from CPU storage: f64 sums of [`NORM_CHUNK`] elements
/// in parallel, added in order, parameters in a fixed order, so the same total whatever the
/// threads. Row gradients are summed in the same groups as their dense form (whose other
/// elements add exact zeros), so both forms give the same norm to the bit.
fn grad_norm_cpu(params: &[Param], gradients: &[Grad]) -> Result<f64> {
    let mut total = 0f64;
    for (p, g) in params.iter().zip(gradients) {
        match g {
            Grad::None => {}
            Grad::Dense(g) => {
                let g = g.contiguous()?;
                let (storage, layout) = g.storage_and_layout();
                let candle_core::Storage::Cpu(CpuStorage::F32(data)) = &*storage else {
                    anyhow::bail!("gradient of {} is not f32 on the CPU", p.name);
                };
                let (start, end) = layout.contiguous_offsets().context("contiguous gradient")?;
                let partials: Vec<f64> = data[start..end]
                    .par_chunks(NORM_CHUNK)
                    .map(|c| c.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>())
                    .collect();
                total += partials.iter().sum::<f64>();
            }
            Grad::Rows(r) => {
                let (mut sum, mut partial, mut chunk) = (0f64, 0f64, None);
                for (row, values) in r.rows.iter().zip(r.values.chunks_exact(r.width)) {
                    for (j, &x) in values.iter().enumerate() {
                        let at = (*row as usize * r.width + j) / NORM_CHUNK;
                        if chunk != Some(at) {
                            sum += partial;
                            partial = 0.0;
                            chunk = Some(at);
                        }
                        partial += (x as f64) * (x as f64);
                    }
                }
                total += sum + partial;
            }
        }
    }
    Ok(total.sqrt())
}

/// f32, and on the CPU or on CUDA with the training kernels switched on (`multitag_model::cuda`).
fn fusable(t: &Tensor) -> bool {
    let device_has_kernels = match t.device() {
        Device::Cpu => true,
        #[cfg(feature = "cuda")]
        Device::Cuda(_) => multitag_model::kernels::cuda::enabled(),
        _ => false,
    };
    device_has_kernels && t.dtype() == candle_core::DType::F32
}

/// The contiguous f32 slice of a CPU storage under `layout`.
fn slice<'a>(s: &'a CpuStorage, layout: &Layout, what: &str) -> candle_core::Result<&'a [f32]> {
    match (s, layout.contiguous_offsets()) {
        (CpuStorage::F32(data), Some((start, end))) => Ok(&data[start..end]),
        _ => candle_core::bail!("AdamW: {what} is not a contiguous f32 CPU tensor"),
    }
}

fn slice_mut<'a>(
    s: &'a mut CpuStorage,
    layout: &Layout,
    what: &str,
) -> candle_core::Result<&'a mut [f32]> {
    match (s, layout.contiguous_offsets()) {
        (CpuStorage::F32(data), Some((start, end))) => Ok(&mut data[start..end]),
        _ => candle_core::bail!("AdamW: {what} is not a contiguous f32 CPU tensor"),
    }
}

/// The step's constants: the moments' decay rates, the clipping factor of the gradient, the
/// weight-decay factor `1 - lr * weight_decay`, the learning rate, the bias corrections (1 where
/// there are none) and epsilon.
#[derive(Clone, Copy)]
struct Hyper {
    beta1: f32,
    beta2: f32,
    scale: f32,
    decay: f32,
    lr: f32,
    bias1: f32,
    bias2: f32,
    eps: f32,
}

impl Hyper {
    /// One element: the new moments, then the parameter.
    #[inline(always)]
    fn apply(&self, p: &mut f32, g: f32, m: &mut f32, v: &mut f32) {
        let g = g * self.scale;
        *m = *m * self.beta1 + g * (1.0 - self.beta1);
        *v = *v * self.beta2 + g * g * (1.0 - self.beta2);
        let update = (*m / self.bias1) / ((*v / self.bias2).sqrt() + self.eps);
        *p = *p * self.decay - update * self.lr;
    }
}

/// The CPU step of one parameter, in place, one pass: `p` (the destination), `g` (the argument)
/// and the interleaved moments.
struct FusedStep<'a> {
    hyper: Hyper,
    moments: &'a Mutex<Vec<f32>>,
}

impl InplaceOp2 for FusedStep<'_> {
    fn name(&self) -> &'static str {
        "adamw-step"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        g: &CpuStorage,
        g_l: &Layout,
    ) -> candle_core::Result<()> {
        let p = slice_mut(dst, dst_l, "parameter")?;
        let g = slice(g, g_l, "gradient")?;
        let mut mv = self.moments.lock().expect("moments lock");
        if p.len() != g.len() || 2 * p.len() != mv.len() {
            candle_core::bail!("AdamW: parameter, gradient and moment sizes differ");
        }
        let h = self.hyper;
        p.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK).zip(mv.par_chunks_mut(2 * CHUNK)))
            .for_each(|(p, (g, mv))| {
                for ((p, &g), mv) in p.iter_mut().zip(g).zip(mv.chunks_exact_mut(2)) {
                    let [m, v] = mv else { unreachable!() };
                    h.apply(p, g, m, v);
                }
            });
        Ok(())
    }
}

/// The CPU step of a lookup table from its row gradient: every row is updated, as from the dense
/// gradient, but the rows without one are updated from a zero held in a register rather than
/// read from a table of zeros.
struct RowStep<'a> {
    hyper: Hyper,
    moments: &'a Mutex<Vec<f32>>,
    rows: &'a SparseRows,
}

impl InplaceOp1 for RowStep<'_> {
    fn name(&self) -> &'static str {
        "adamw-row-step"
    }

    fn cpu_fwd(&self, dst: &mut CpuStorage, dst_l: &Layout) -> candle_core::Result<()> {
        let p = slice_mut(dst, dst_l, "parameter")?;
        let mut mv = self.moments.lock().expect("moments lock");
        let SparseRows {
            rows,
            values,
            width,
        } = self.rows;
        let width = *width;
        if width == 0 || p.len() % width != 0 || 2 * p.len() != mv.len() {
            candle_core::bail!("AdamW: table, row width and moment sizes differ");
        }
        if rows.last().is_some_and(|&r| r as usize >= p.len() / width) {
            candle_core::bail!("AdamW: a row gradient lies outside the table");
        }
        let h = self.hyper;
        let rows_per_task = CHUNK.div_ceil(width);
        p.par_chunks_mut(rows_per_task * width)
            .zip(mv.par_chunks_mut(2 * rows_per_task * width))
            .enumerate()
            .for_each(|(task, (p, mv))| {
                let first = task * rows_per_task;
                let mut next = rows.partition_point(|&r| (r as usize) < first);
                for (i, (p, mv)) in p
                    .chunks_exact_mut(width)
                    .zip(mv.chunks_exact_mut(2 * width))
                    .enumerate()
                {
                    let grad = if rows.get(next).is_some_and(|&r| r as usize == first + i) {
                        next += 1;
                        Some(&values[(next - 1) * width..next * width])
                    } else {
                        None
                    };
                    for (j, (p, mv)) in p.iter_mut().zip(mv.chunks_exact_mut(2)).enumerate() {
                        let [m, v] = mv else { unreachable!() };
                        h.apply(p, grad.map_or(0.0, |g| g[j]), m, v);
                    }
                }
            });
        Ok(())
    }
}

/// In place: `m = beta * m + (1 - beta) * (scale * g)`, or with `square` the same on `(scale * g)^2`
/// (the CUDA path; on the CPU [`FusedStep`] does both moments and the parameter at once).
#[cfg(feature = "cuda")]
struct Moment {
    beta: f32,
    scale: f32,
    square: bool,
}

#[cfg(feature = "cuda")]
impl Moment {
    fn first(h: &Hyper) -> Self {
        Self {
            beta: h.beta1,
            scale: h.scale,
            square: false,
        }
    }

    fn second(h: &Hyper) -> Self {
        Self {
            beta: h.beta2,
            scale: h.scale,
            square: true,
        }
    }
}

#[cfg(feature = "cuda")]
impl InplaceOp2 for Moment {
    fn name(&self) -> &'static str {
        "adamw-moment"
    }

    fn cpu_fwd(
        &self,
        _: &mut CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<()> {
        candle_core::bail!("AdamW: CPU moments are updated by the fused step")
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        dst: &mut candle_core::CudaStorage,
        dst_l: &Layout,
        g: &candle_core::CudaStorage,
        g_l: &Layout,
    ) -> candle_core::Result<()> {
        let args = (self.beta, self.scale, self.square);
        multitag_model::kernels::cuda::adamw_moment(dst, dst_l, g, g_l, args)
    }
}

/// In place on CUDA: `p = p * decay - lr * (m / bias1) / (sqrt(v / bias2) + eps)`.
#[cfg(feature = "cuda")]
struct Update(Hyper);

#[cfg(feature = "cuda")]
impl InplaceOp3 for Update {
    fn name(&self) -> &'static str {
        "adamw-update"
    }

    fn cpu_fwd(
        &self,
        _: &mut CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<()> {
        candle_core::bail!("AdamW: CPU parameters are updated by the fused step")
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        dst: &mut candle_core::CudaStorage,
        dst_l: &Layout,
        m: &candle_core::CudaStorage,
        m_l: &Layout,
        v: &candle_core::CudaStorage,
        v_l: &Layout,
    ) -> candle_core::Result<()> {
        let h = &self.0;
        let args = [h.decay, h.lr, h.bias1, h.bias2, h.eps];
        multitag_model::kernels::cuda::adamw_update(dst, dst_l, (m, m_l), (v, v_l), args)
    }
}

/// transformers' `get_linear_schedule_with_warmup` as SpERT calls it (`warmup · total` warm-up
/// steps, a float): from 0 at the first step up to `base` at the end of the warm-up, then down to 0
/// at `total`.
pub fn linear_schedule_with_warmup(base: f64, step: usize, total: usize, warmup: f64) -> f64 {
    let (s, total) = (step as f64, total as f64);
    let warm = warmup * total;
    if s < warm {
        base * s / warm.max(1.0)
    } else {
        base * ((total - s) / (total - warm).max(1.0)).max(0.0)
    }
}

/// Linear warm-up over the first `warmup` fraction of steps, then linear decay to zero.
pub fn learning_rate(base: f64, step: usize, total: usize, warmup: f64) -> f64 {
    let total = total.max(1) as f64;
    let warm = (warmup * total).max(1.0);
    let s = step as f64;
    base * ((s + 1.0) / warm).min(1.0) * ((total - s) / total).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::{Init, VarBuilder};

    /// transformers' schedule for SpERT's CoNLL04 run: 9,220 steps, 922 of warm-up.
    #[test]
    fn spert_schedule_is_transformers_linear_warmup() {
        let lr = |s| AdamWStyle::Spert.learning_rate(5e-5, s, 9220, 0.1);
        assert_eq!(lr(0), 0.0);
        assert!((lr(461) - 2.5e-5).abs() < 1e-15);
        assert!((lr(922) - 5e-5).abs() < 1e-15);
        assert!((lr(922 + 4149) - 2.5e-5).abs() < 1e-15);
        assert_eq!(lr(9220), 0.0);
    }

    #[test]
    fn schedule_warms_up_then_decays() {
        assert!(learning_rate(1.0, 0, 100, 0.1) < 0.2);
        assert!((learning_rate(1.0, 9, 100, 0.1) - 0.91).abs() < 1e-9);
        assert!(learning_rate(1.0, 50, 100, 0.1) < learning_rate(1.0, 20, 100, 0.1));
        assert_eq!(learning_rate(1.0, 100, 100, 0.1), 0.0);
    }

    /// Five steps on a small least-squares problem: the parameters, the moments of the bias and
    /// the gradient norms afterwards.
    fn five_steps(fused: bool, device: &Device) -> Result<Vec<Vec<f32>>> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
        let w = vb.get_with_hints(
            (3, 4),
            "w",
            Init::Randn {
                mean: 0.0,
                stdev: 1.0,
            },
        )?;
        let b = vb.get_with_hints(4, "b", Init::Const(0.5))?;
        // Deterministic start (the random init differs between the two calls).
        let start: Vec<f32> = (0..12).map(|i| (i as f32 * 0.37).sin()).collect();
        varmap.data().lock().unwrap()["w"].set(&Tensor::from_vec(start, (3, 4), device)?)?;
        let x = Tensor::new(&[[1f32, -2., 0.5], [0.3, 0.1, -1.0]], device)?;
        let mut opt = AdamW::with_style(&varmap, 0.01, AdamWStyle::Pytorch)?;
        let mut norms = Vec::new();
        for step in 0..5 {
            let y = x.matmul(&w)?.broadcast_add(&b)?;
            let loss = (y.sqr()?.sum_all()? * 3.0)?;
            // Clipping kicks in on the first steps (large gradients), not later.
            let max_norm = if step < 2 { 1.0 } else { 100.0 };
            norms.push(opt.step_with(&loss.backward()?, None, 0.01, max_norm, fused)? as f32);
        }
        let moments = opt.params[1]
            .moments
            .tensors(opt.params[1].var.as_tensor())?;
        Ok(vec![
            w.flatten_all()?.to_vec1::<f32>()?,
            b.to_vec1::<f32>()?,
            moments.0.flatten_all()?.to_vec1::<f32>()?,
            moments.1.flatten_all()?.to_vec1::<f32>()?,
            norms,
        ])
    }

    /// Four steps on a lookup table read twice a step (rows repeated, shared between the reads,
    /// the last row included) and a dense weight, the table read whole or by rows: the table,
    /// its moments, the weight and the gradient norms afterwards.
    fn table_steps(by_rows: bool) -> Result<Vec<Vec<f32>>> {
        let device = &Device::Cpu;
        let (rows, width) = (4000, 20);
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
        let table = vb.get_with_hints((rows, width), "embeddings.weight", Init::Const(0.0))?;
        let start: Vec<f32> = (0..rows * width).map(|i| (i as f32 * 0.37).sin()).collect();
        varmap.data().lock().unwrap()["embeddings.weight"].set(&Tensor::from_vec(
            start,
            (rows, width),
            device,
        )?)?;
        let w = vb.get_with_hints(width, "dense.weight", Init::Const(0.3))?;
        let mut opt = AdamW::with_style(&varmap, 0.01, AdamWStyle::Spert)?;
        let reads = RowGradients::default();
        let mut norms = Vec::new();
        for step in 0..4u32 {
            let first = Tensor::new(&[[3u32, 3999, 3 + step], [17, 3, 3500]], device)?;
            let second = Tensor::new(&[5u32, 3999, 2 * step], device)?;
            let lookup = |ids: &Tensor| -> candle_core::Result<Tensor> {
                if by_rows {
                    reads.gather(&table, ids)
                } else {
                    let mut dims = ids.dims().to_vec();
                    dims.push(width);
                    table.index_select(&ids.flatten_all()?, 0)?.reshape(dims)
                }
            };
            let a = lookup(&first)?.broadcast_mul(&w)?.sqr()?.sum_all()?;
            let b = (lookup(&second)?.sum_all()? * 0.5)?;
            let grads = (a + b)?.backward()?;
            let max_norm = if step < 2 { 1.0 } else { 100.0 };
            let norm = if by_rows {
                opt.step_rows(&grads, &reads, 0.01, max_norm)?
            } else {
                opt.step(&grads, 0.01, max_norm)?
            };
            norms.push(norm as f32);
        }
        let at = opt
            .params
            .iter()
            .position(|p| p.name == "embeddings.weight");
        let table_param = &opt.params[at.unwrap()];
        let (m, v) = table_param.moments.tensors(table_param.var.as_tensor())?;
        Ok(vec![
            table.flatten_all()?.to_vec1::<f32>()?,
            m.flatten_all()?.to_vec1::<f32>()?,
            v.flatten_all()?.to_vec1::<f32>()?,
            w.to_vec1::<f32>()?,
            norms,
        ])
    }

    #[test]
    fn row_gradients_update_a_table_as_its_dense_gradient_does() -> Result<()> {
        let (by_rows, dense) = (table_steps(true)?, table_steps(false)?);
        // Equal to the bit: the same arithmetic on every element, zeros held rather than read.
        for (ours, reference) in by_rows.iter().zip(&dense) {
            let bits = |xs: &[f32]| xs.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(ours), bits(reference));
        }
        // The table moved where it was read and (decay, moments) elsewhere too.
        assert!(by_rows[1][3 * 20] != 0.0 && by_rows[1][100 * 20] == 0.0);
        Ok(())
    }

    fn assert_close(ours: &[Vec<f32>], reference: &[Vec<f32>]) {
        for (a, b) in ours.iter().zip(reference) {
            for (x, y) in a.iter().zip(b) {
                assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn fused_cpu_update_matches_the_tensor_formulation() -> Result<()> {
        let device = Device::Cpu;
        assert_close(&five_steps(true, &device)?, &five_steps(false, &device)?);
        Ok(())
    }

    /// The CUDA kernels against the tensor formulation on the CPU.
    #[cfg(feature = "cuda")]
    #[test]
    fn fused_cuda_update_matches_the_tensor_formulation() -> Result<()> {
        assert!(
            multitag_model::kernels::cuda::set_enabled(true),
            "kernels switched off"
        );
        let ours = five_steps(true, &Device::new_cuda(0)?)?;
        assert_close(&ours, &five_steps(false, &Device::Cpu)?);
        Ok(())
    }

    /// One step from 1.0 with gradient 1 (loss = sum), lr 0.1, weight decay 0.5, by hand: the
    /// PyTorch update is `lr · m̂/√v̂ = lr`; SpERT's uncorrected one `lr · 0.1/(√0.001 + 1e-6)`,
    /// the decay after it; SpERT's style decays the weight but not the bias or the layer norm.
    #[test]
    fn the_spert_style_skips_bias_correction_and_decay_of_biases_and_norms() -> Result<()> {
        for (style, fused) in [
            (AdamWStyle::Pytorch, true),
            (AdamWStyle::Spert, true),
            (AdamWStyle::Spert, false),
        ] {
            let varmap = VarMap::new();
            let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
            let names = ["dense.weight", "dense.bias", "LayerNorm.weight"];
            let vars: Vec<Tensor> = names
                .iter()
                .map(|n| vb.get_with_hints(1, n, Init::Const(1.0)))
                .collect::<candle_core::Result<_>>()?;
            let mut opt = AdamW::with_style(&varmap, 0.5, style)?;
            let loss = Tensor::cat(&vars, 0)?.sum_all()?;
            opt.step_with(&loss.backward()?, None, 0.1, 0.0, fused)?;
            // SpERT: eps 1e-6, and the decay applied after the update.
            let step = match style {
                AdamWStyle::Pytorch => 0.1,
                AdamWStyle::Spert => 0.1 * 0.1 / (0.001f64.sqrt() + 1e-6),
            };
            for (name, var) in names.iter().zip(&vars) {
                let decays = style == AdamWStyle::Pytorch || *name == "dense.weight";
                let expected = match (style, decays) {
                    (AdamWStyle::Pytorch, _) => 1.0 - 0.1 * 0.5 - step,
                    (AdamWStyle::Spert, true) => (1.0 - step) * (1.0 - 0.1 * 0.5),
                    (AdamWStyle::Spert, false) => 1.0 - step,
                };
                let got = var.to_vec1::<f32>()?[0] as f64;
                assert!(
                    (got - expected).abs() < 1e-5,
                    "{style:?} {name}: {got} vs {expected}"
                );
            }
        }
        Ok(())
    }

    /// A restored optimizer continues exactly as the one it was saved from.
    #[test]
    fn saved_moments_restore_the_same_next_step() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("multitag-optim-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("optimizer.safetensors");
        let run = |restore: bool| -> Result<Vec<f32>> {
            let varmap = VarMap::new();
            let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
            let x = vb.get_with_hints(3, "x", Init::Const(2.0))?;
            let var = varmap.data().lock().unwrap()["x"].clone();
            let mut opt = AdamW::with_style(&varmap, 0.1, AdamWStyle::Pytorch)?;
            let loss = |x: &Tensor| -> Result<GradStore> {
                Ok((x.sqr()?.sum_all()? + x.sum_all()?)?.backward()?)
            };
            if restore {
                var.set(&Tensor::new(&[1.9f32, 1.9, 1.9], &Device::Cpu)?)?;
                opt.load(&path, 1)?;
            } else {
                opt.step(&loss(&x)?, 0.1, 0.0)?;
                var.set(&Tensor::new(&[1.9f32, 1.9, 1.9], &Device::Cpu)?)?;
                opt.save(&path)?;
            }
            opt.step(&loss(&x)?, 0.1, 0.0)?;
            Ok(x.to_vec1::<f32>()?)
        };
        let uninterrupted = run(false)?;
        let restored = run(true)?;
        std::fs::remove_dir_all(&dir)?;
        assert_eq!(uninterrupted, restored);
        Ok(())
    }

    #[test]
    fn minimises_a_quadratic_and_clips() -> Result<()> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let x = vb.get_with_hints(2, "x", Init::Const(3.0))?;
        let mut opt = AdamW::with_style(&varmap, 0.0, AdamWStyle::Pytorch)?;
        let mut first_norm = 0.0;
        for i in 0..300 {
            let loss = x.sqr()?.sum_all()?;
            let norm = opt.step(&loss.backward()?, 0.05, 1.0)?;
            if i == 0 {
                first_norm = norm;
            }
        }
        assert!((first_norm - (72f64).sqrt()).abs() < 1e-4);
        let rest = x.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(rest < 0.05, "{rest}");
        Ok(())
    }
}

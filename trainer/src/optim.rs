//! AdamW (Loshchilov & Hutter, PyTorch's formulation) with global-norm gradient clipping and a
//! linear warm-up/decay schedule. Written here rather than taken from candle-nn because a
//! `--resume` must restore the moment estimates, which candle-nn's optimizer keeps private.
//!
//! On CPU (f32, contiguous) the update runs in place, fused: one pass over each parameter's
//! gradient for the norm, one in-place pass each for the two moments and the parameter, and no
//! allocation. The tensor-op formulation (about 17 temporaries the size of each parameter, half of
//! MiniLM's parameters being the 30k x 384 word embeddings) cost a large share of a CPU training
//! step in memory traffic and page faults. On CUDA the same in-place ops have kernels
//! (`multitag_model::cuda`, where switched on); other devices keep the tensor-op path.
use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, Device, InplaceOp2, InplaceOp3, Layout, Tensor, Var};
use candle_nn::VarMap;
use rayon::prelude::*;

/// Elements per parallel task of the in-place updates: large parameters (the word embeddings) are
/// split over the cores, small ones stay one task.
const CHUNK: usize = 1 << 16;

/// Which AdamW: PyTorch's `torch.optim.AdamW` (bias-corrected moments, every parameter decayed),
/// or the one SpERT trains with (transformers' `AdamW(correct_bias=False)`, and no weight decay
/// on biases and layer-norm weights: its `_get_optimizer_params`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AdamWStyle {
    #[default]
    Pytorch,
    Spert,
}

impl AdamWStyle {
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
    m: Tensor,
    v: Tensor,
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
                    m: var.zeros_like()?,
                    v: var.zeros_like()?,
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
            eps: 1e-8,
            weight_decay,
        })
    }

    /// One update; returns the gradient norm before clipping.
    pub fn step(&mut self, grads: &GradStore, lr: f64, max_norm: f64) -> Result<f64> {
        self.step_with(grads, lr, max_norm, true)
    }

    /// `allow_fused: false` forces the tensor-op path (the reference the fused one is tested on).
    fn step_with(
        &mut self,
        grads: &GradStore,
        lr: f64,
        max_norm: f64,
        allow_fused: bool,
    ) -> Result<f64> {
        let fused = allow_fused && self.params.iter().all(|p| fusable(p.var.as_tensor()));
        let on_cpu = self.params.iter().all(|p| p.var.device().is_cpu());
        let norm = if fused && on_cpu {
            self.grad_norm_cpu(grads)?
        } else {
            self.grad_norm_tensors(grads)?
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
        for p in &mut self.params {
            let Some(g) = grads.get(&p.var) else { continue };
            let weight_decay = if p.decays { self.weight_decay } else { 0.0 };
            if fused && fusable(g) && fusable(&p.m) && fusable(&p.v) {
                let g = g.contiguous()?;
                p.m.inplace_op2(
                    &g,
                    &Moment {
                        beta: self.beta1 as f32,
                        scale: scale as f32,
                        square: false,
                    },
                )?;
                p.v.inplace_op2(
                    &g,
                    &Moment {
                        beta: self.beta2 as f32,
                        scale: scale as f32,
                        square: true,
                    },
                )?;
                p.var.as_tensor().inplace_op3(
                    &p.m,
                    &p.v,
                    &Update {
                        decay: (1.0 - lr * weight_decay) as f32,
                        lr: lr as f32,
                        bias1: bias1 as f32,
                        bias2: bias2 as f32,
                        eps: self.eps as f32,
                    },
                )?;
                continue;
            }
            let g = (g * scale)?;
            p.m = ((&p.m * self.beta1)? + (&g * (1.0 - self.beta1))?)?;
            p.v = ((&p.v * self.beta2)? + (g.sqr()? * (1.0 - self.beta2))?)?;
            let update = ((&p.m / bias1)? / ((&p.v / bias2)?.sqrt()? + self.eps)?)?;
            let decayed = (p.var.as_tensor() * (1.0 - lr * weight_decay))?;
            p.var.set(&(decayed - (update * lr)?)?)?;
        }
        Ok(norm)
    }

    fn grad_norm_tensors(&self, grads: &GradStore) -> Result<f64> {
        let mut squares = Vec::with_capacity(self.params.len());
        for p in &self.params {
            if let Some(g) = grads.get(&p.var) {
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

    /// The global gradient norm read straight from CPU storage (f64 accumulation, fixed order).
    fn grad_norm_cpu(&self, grads: &GradStore) -> Result<f64> {
        let mut total = 0f64;
        for p in &self.params {
            let Some(g) = grads.get(&p.var) else { continue };
            let g = g.contiguous()?;
            let (storage, layout) = g.storage_and_layout();
            let candle_core::Storage::Cpu(CpuStorage::F32(data)) = &*storage else {
                anyhow::bail!("gradient of {} is not f32 on the CPU", p.name);
            };
            let (start, end) = layout.contiguous_offsets().context("contiguous gradient")?;
            // Chunk sums in parallel, added in chunk order: the same total whatever the threads.
            let partials: Vec<f64> = data[start..end]
                .par_chunks(4096)
                .map(|c| c.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>())
                .collect();
            total += partials.iter().sum::<f64>();
        }
        Ok(total.sqrt())
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors = HashMap::new();
        for p in &self.params {
            tensors.insert(format!("m.{}", p.name), p.m.clone());
            tensors.insert(format!("v.{}", p.name), p.v.clone());
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
            for (kind, slot) in [("m", &mut p.m), ("v", &mut p.v)] {
                let key = format!("{kind}.{}", p.name);
                *slot = tensors
                    .get(&key)
                    .with_context(|| format!("{}: no `{key}`", path.display()))?
                    .clone();
            }
        }
        self.step = step;
        Ok(())
    }
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

/// In place: `m = beta * m + (1 - beta) * (scale * g)`, or with `square` the same on `(scale * g)^2`.
struct Moment {
    beta: f32,
    scale: f32,
    square: bool,
}

impl InplaceOp2 for Moment {
    fn name(&self) -> &'static str {
        "adamw-moment"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        g: &CpuStorage,
        g_l: &Layout,
    ) -> candle_core::Result<()> {
        let m = slice_mut(dst, dst_l, "moment")?;
        let g = slice(g, g_l, "gradient")?;
        if m.len() != g.len() {
            candle_core::bail!("AdamW: moment and gradient sizes differ");
        }
        let (beta, rest) = (self.beta, 1.0 - self.beta);
        m.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .for_each(|(m, g)| {
                if self.square {
                    for (m, &g) in m.iter_mut().zip(g) {
                        let g = g * self.scale;
                        *m = *m * beta + g * g * rest;
                    }
                } else {
                    for (m, &g) in m.iter_mut().zip(g) {
                        *m = *m * beta + g * self.scale * rest;
                    }
                }
            });
        Ok(())
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

/// In place: `p = p * decay - lr * (m / bias1) / (sqrt(v / bias2) + eps)`.
struct Update {
    decay: f32,
    lr: f32,
    bias1: f32,
    bias2: f32,
    eps: f32,
}

impl InplaceOp3 for Update {
    fn name(&self) -> &'static str {
        "adamw-update"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        m: &CpuStorage,
        m_l: &Layout,
        v: &CpuStorage,
        v_l: &Layout,
    ) -> candle_core::Result<()> {
        let p = slice_mut(dst, dst_l, "parameter")?;
        let m = slice(m, m_l, "first moment")?;
        let v = slice(v, v_l, "second moment")?;
        if p.len() != m.len() || p.len() != v.len() {
            candle_core::bail!("AdamW: parameter and moment sizes differ");
        }
        p.par_chunks_mut(CHUNK)
            .zip(m.par_chunks(CHUNK).zip(v.par_chunks(CHUNK)))
            .for_each(|(p, (m, v))| {
                for ((p, &m), &v) in p.iter_mut().zip(m).zip(v) {
                    let update = (m / self.bias1) / ((v / self.bias2).sqrt() + self.eps);
                    *p = *p * self.decay - update * self.lr;
                }
            });
        Ok(())
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
        let args = [self.decay, self.lr, self.bias1, self.bias2, self.eps];
        multitag_model::kernels::cuda::adamw_update(dst, dst_l, (m, m_l), (v, v_l), args)
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
            norms.push(opt.step_with(&loss.backward()?, 0.01, max_norm, fused)? as f32);
        }
        Ok(vec![
            w.flatten_all()?.to_vec1::<f32>()?,
            b.to_vec1::<f32>()?,
            opt.params[1].m.flatten_all()?.to_vec1::<f32>()?,
            opt.params[1].v.flatten_all()?.to_vec1::<f32>()?,
            norms,
        ])
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
    /// PyTorch update is `lr · m̂/√v̂ = lr`; SpERT's uncorrected one `lr · 0.1/√0.001`; SpERT's
    /// style decays the weight but not the bias or the layer norm.
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
            opt.step_with(&loss.backward()?, 0.1, 0.0, fused)?;
            let step = match style {
                AdamWStyle::Pytorch => 0.1,
                AdamWStyle::Spert => 0.1 * 0.1 / 0.001f64.sqrt(),
            };
            for (name, var) in names.iter().zip(&vars) {
                let decays = style == AdamWStyle::Pytorch || *name == "dense.weight";
                let expected = if decays { 1.0 - 0.1 * 0.5 } else { 1.0 } - step;
                let got = var.to_vec1::<f32>()?[0] as f64;
                assert!(
                    (got - expected).abs() < 1e-5,
                    "{style:?} {name}: {got} vs {expected}"
                );
            }
        }
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

//! AdamW (Loshchilov & Hutter, PyTorch's formulation) with global-norm gradient clipping and a
//! linear warm-up/decay schedule. Written here rather than taken from candle-nn because a
//! `--resume` must restore the moment estimates, which candle-nn's optimizer keeps private.
use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use candle_nn::VarMap;

pub struct AdamW {
    params: Vec<Param>,
    pub step: usize,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
}

struct Param {
    name: String,
    var: Var,
    m: Tensor,
    v: Tensor,
}

impl AdamW {
    pub fn new(varmap: &VarMap, weight_decay: f64) -> Result<Self> {
        let data = varmap.data().lock().expect("variable map lock");
        let mut params: Vec<Param> = data
            .iter()
            .map(|(name, var)| {
                Ok(Param {
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
            step: 0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
        })
    }

    /// One update; returns the gradient norm before clipping.
    pub fn step(&mut self, grads: &GradStore, lr: f64, max_norm: f64) -> Result<f64> {
        let mut squares = Vec::with_capacity(self.params.len());
        for p in &self.params {
            if let Some(g) = grads.get(&p.var) {
                squares.push(g.sqr()?.sum_all()?);
            }
        }
        let norm = if squares.is_empty() {
            0.0
        } else {
            Tensor::stack(&squares, 0)?
                .sum_all()?
                .to_scalar::<f32>()?
                .sqrt() as f64
        };
        let scale = if max_norm > 0.0 && norm > max_norm {
            max_norm / (norm + 1e-6)
        } else {
            1.0
        };
        self.step += 1;
        let t = self.step as i32;
        let bias1 = 1.0 - self.beta1.powi(t);
        let bias2 = 1.0 - self.beta2.powi(t);
        for p in &mut self.params {
            let Some(g) = grads.get(&p.var) else { continue };
            let g = (g * scale)?;
            p.m = ((&p.m * self.beta1)? + (&g * (1.0 - self.beta1))?)?;
            p.v = ((&p.v * self.beta2)? + (g.sqr()? * (1.0 - self.beta2))?)?;
            let update = ((&p.m / bias1)? / ((&p.v / bias2)?.sqrt()? + self.eps)?)?;
            let decayed = (p.var.as_tensor() * (1.0 - lr * self.weight_decay))?;
            p.var.set(&(decayed - (update * lr)?)?)?;
        }
        Ok(norm)
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

    #[test]
    fn minimises_a_quadratic_and_clips() -> Result<()> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let x = vb.get_with_hints(2, "x", Init::Const(3.0))?;
        let mut opt = AdamW::new(&varmap, 0.0)?;
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

//! Layer norm, softmax and bias addition for the training path, each a single CPU kernel with a
//! backward pass; layer norm and bias addition also have CUDA kernels (`kernels::cuda`).
//!
//! candle-nn's fused `layer_norm` and `softmax_last_dim` have no backward, so training used to
//! build both from primitive ops: about ten full passes over the activations forward (each
//! allocating a tensor) and twice that backward, most of them single-threaded; and the gradient of
//! a broadcast bias reduces over the leading dimension with strided reads. Here each is one pass
//! forward and one backward, parallel over rows. The kernels are f32 only, and on CUDA only where
//! `kernels::cuda` is switched on; elsewhere each function computes the same thing from primitive
//! ops, which are also the reference the tests compare with.
use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Storage, Tensor, D,
};
use rayon::prelude::*;

#[cfg(feature = "cuda")]
use super::cuda;
use super::dispatch::{cpu_applies, f32_slice, kernel_applies};
use super::dropout::DropoutDraw;
use super::math::softmax_in_place;
use super::strided::{matmul_new, matmul_parallel, MatMut, MatRef};

/// Rows per parallel task: enough work per task to amortise scheduling.
const ROWS_PER_TASK: usize = 16;

/// Layer norm over the last dimension, `(x - mean) / sqrt(var + eps) * weight + bias`.
pub fn layer_norm(xs: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    if !kernel_applies(&[xs, weight, bias]) {
        return primitive_layer_norm(xs, weight, bias, eps);
    }
    check_row_vectors("layer-norm", xs, &[weight, bias])?;
    xs.contiguous()?.apply_op3(
        &weight.contiguous()?,
        &bias.contiguous()?,
        LayerNorm { eps: eps as f32 },
    )
}

fn primitive_layer_norm(xs: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    let mean = xs.mean_keepdim(D::Minus1)?;
    let centered = xs.broadcast_sub(&mean)?;
    let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
    centered
        .broadcast_div(&(var + eps)?.sqrt()?)?
        .broadcast_mul(weight)?
        .broadcast_add(bias)
}

/// `layer_norm(dropout(y) + residual)`: how every BERT sub-layer ends. One pass each way instead of
/// a mask tensor, a multiply, an add and a layer norm, each with its own intermediate gradient to
/// allocate and sum; the dropout mask is drawn per row inside the kernel and redrawn backward.
/// Where no kernel applies ([`kernel_applies`]: f32 on the CPU, or CUDA with its kernels on) the
/// same thing is composed: the mask as a tensor, the sum, and the layer norm in f32.
pub fn residual_layer_norm(
    y: &Tensor,
    residual: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
    dropout: Option<DropoutDraw>,
) -> Result<Tensor> {
    if !kernel_applies(&[y, residual, weight, bias]) {
        let xs = (dropout_composed(y, dropout)? + residual)?;
        let dtype = xs.dtype();
        return layer_norm(&xs.to_dtype(DType::F32)?, weight, bias, eps)?.to_dtype(dtype);
    }
    check_row_vectors("residual-layer-norm", y, &[weight, bias])?;
    if y.shape() != residual.shape() {
        candle_core::bail!(
            "residual-layer-norm: {:?} and residual {:?}",
            y.shape(),
            residual.shape()
        )
    }
    let params = Tensor::cat(&[weight, bias], 0)?;
    y.contiguous()?.apply_op3(
        &residual.contiguous()?,
        &params,
        ResidualLayerNorm {
            eps: eps as f32,
            dropout,
        },
    )
}

/// Inverted dropout as tensor ops, for devices and dtypes without the fused kernels: on the CPU
/// the draw's stream 0 as a mask, elsewhere [`dropout_on_device`].
fn dropout_composed(xs: &Tensor, dropout: Option<DropoutDraw>) -> Result<Tensor> {
    let Some(draw) = dropout else {
        return Ok(xs.clone());
    };
    if xs.device().is_cpu() {
        let mask = Tensor::from_vec(draw.keep_mask(0, xs.elem_count()), xs.shape(), xs.device())?;
        return xs * mask.to_dtype(xs.dtype())?;
    }
    dropout_on_device(xs, draw.p)
}

/// Inverted dropout with the mask drawn on the tensor's own device, from its generator (seeded
/// through `Device::set_seed`): for accelerators, where drawing on the host and copying over
/// would cost more than the step.
pub fn dropout_on_device(xs: &Tensor, p: f32) -> Result<Tensor> {
    let draws = Tensor::rand(0f32, 1f32, xs.shape(), xs.device())?;
    let keep = draws.ge(p as f64)?.to_dtype(xs.dtype())?;
    xs * (keep * (1.0 / (1.0 - p as f64)))?
}

/// Rows of `table` `(rows, hidden)` for `ids` of any shape: `ids.shape + (hidden,)`. On CUDA with
/// its kernels on, a gather whose backward scatters atomically (candle's `index_add` runs as one
/// block); elsewhere candle's `index_select`.
pub fn gather_rows(table: &Tensor, ids: &Tensor) -> Result<Tensor> {
    #[cfg(feature = "cuda")]
    if super::dispatch::cuda_applies(&[table]) {
        return cuda::gather_rows(table, ids);
    }
    if ids.rank() == 1 {
        return table.index_select(ids, 0);
    }
    let mut dims = ids.dims().to_vec();
    dims.push(table.dim(1)?);
    table.index_select(&ids.flatten_all()?, 0)?.reshape(dims)
}

/// Softmax over the last dimension.
pub fn softmax_last_dim(xs: &Tensor) -> Result<Tensor> {
    if !cpu_applies(&[xs]) {
        return candle_nn::ops::softmax(xs, D::Minus1);
    }
    xs.contiguous()?.apply_op1(Softmax)
}

/// `x w^T + b` for `x` `(rows, in)`, `w` `(out, in)` and `b` `(out,)`: a dense layer as one op.
/// Through candle the same layer is a matmul against the transposed view `w^T` and a bias add;
/// backward, the weight's gradient then comes back transposed and is summed into place with
/// strided reads, and the output's gradient passes through the bias add to be summed once more.
/// Here the bias initialises the product, and the backward pass writes each gradient in its
/// tensor's own layout.
pub fn linear(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    if !cpu_applies(&[x, w, b]) {
        return add_bias(&x.matmul(&w.t()?)?, b);
    }
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &b.contiguous()?, Linear)
}

/// `xs + bias` for `(rows, out)` by `(out,)`.
pub fn add_bias(xs: &Tensor, bias: &Tensor) -> Result<Tensor> {
    if !kernel_applies(&[xs, bias]) {
        return xs.broadcast_add(bias);
    }
    check_row_vectors("add-bias", xs, &[bias])?;
    xs.contiguous()?.apply_op2(&bias.contiguous()?, AddBias)
}

fn last_dim(name: &str, layout: &Layout) -> Result<usize> {
    match layout.dims().last() {
        Some(&d) if d > 0 => Ok(d),
        _ => candle_core::bail!("{name}: empty last dimension"),
    }
}

/// Checks that each of `vectors` (a weight, a bias) has one element per column of `xs`'s rows,
/// once for both the CPU and the CUDA kernels, which index them by column.
fn check_row_vectors(name: &str, xs: &Tensor, vectors: &[&Tensor]) -> Result<()> {
    let d = xs.dims().last().copied().unwrap_or(0);
    if d == 0 || vectors.iter().any(|v| v.elem_count() != d) {
        candle_core::bail!("{name}: per-column vectors must have {d} elements, one a column")
    }
    Ok(())
}

/// Fills `out` row by row (rows of `d`), in parallel: `fill(row index, output row)`.
fn for_each_row(out: &mut [f32], d: usize, fill: impl Fn(usize, &mut [f32]) + Sync) {
    out.par_chunks_mut(d * ROWS_PER_TASK)
        .enumerate()
        .for_each(|(task, rows)| {
            for (i, row) in rows.chunks_mut(d).enumerate() {
                fill(task * ROWS_PER_TASK + i, row);
            }
        });
}

/// Sums per-task partial vectors of length `d`, one task per `ROWS_PER_TASK` rows of `rows`
/// (row count), each computed by `partial(row range)`. The partials are added in task order, so
/// the result does not depend on scheduling and training stays deterministic.
fn sum_over_tasks(
    rows: usize,
    d: usize,
    partial: impl Fn(std::ops::Range<usize>) -> Vec<f32> + Sync,
) -> Vec<f32> {
    let partials: Vec<Vec<f32>> = (0..rows.div_ceil(ROWS_PER_TASK))
        .into_par_iter()
        .map(|task| partial(task * ROWS_PER_TASK..((task + 1) * ROWS_PER_TASK).min(rows)))
        .collect();
    let mut total = vec![0f32; d];
    for part in partials {
        total.iter_mut().zip(part).for_each(|(t, p)| *t += p);
    }
    total
}

/// The sum of the rows (`d` wide) of `x`.
fn column_sums(x: &[f32], d: usize) -> Vec<f32> {
    sum_over_tasks(x.len() / d.max(1), d, |rows| {
        let mut sum = vec![0f32; d];
        for r in rows {
            sum.iter_mut()
                .zip(&x[r * d..(r + 1) * d])
                .for_each(|(s, &v)| *s += v);
        }
        sum
    })
}

/// Mean and 1/std of one row.
#[inline]
fn row_stats(row: &[f32], eps: f32) -> (f32, f32) {
    let n = row.len() as f32;
    let mean = lane_sum(row, |x| x) / n;
    let var = lane_sum(row, |x| (x - mean) * (x - mean)) / n;
    (mean, 1.0 / (var + eps).sqrt())
}

/// `sum f(x)` over `row` in 16 independent running sums, which the compiler turns into vector
/// adds: one running sum must add in order, and kept layer norm's statistics scalar (5% of
/// tagging one title at a time).
#[inline(always)]
fn lane_sum(row: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0f32; 16];
    let chunks = row.chunks_exact(16);
    let tail: f32 = chunks.remainder().iter().map(|&x| f(x)).sum();
    for chunk in chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane += f(x);
        }
    }
    lanes.iter().sum::<f32>() + tail
}

struct LayerNorm {
    eps: f32,
}

impl LayerNorm {
    /// The input's gradient and the weight's and bias's stacked (`2 * d`).
    fn cpu_grads(&self, xs: &Tensor, weight: &Tensor, grad: &Tensor) -> Result<(Tensor, Tensor)> {
        let (grad_xs, grad_params) = with_values("layer-norm-grad", &[xs, weight, grad], |v| {
            Ok(layer_norm_grads(v[0], v[1], v[2], self.eps))
        })?;
        let device = xs.device();
        Ok((
            Tensor::from_vec(grad_xs, xs.shape(), device)?,
            Tensor::from_vec(grad_params, 2 * weight.elem_count(), device)?,
        ))
    }
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "layer-norm-trainable"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xs_layout: &Layout,
        weight: &CpuStorage,
        weight_layout: &Layout,
        bias: &CpuStorage,
        bias_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = last_dim(self.name(), xs_layout)?;
        let x = f32_slice(self.name(), xs, xs_layout)?;
        let w = f32_slice(self.name(), weight, weight_layout)?;
        let b = f32_slice(self.name(), bias, bias_layout)?;
        let mut out = vec![0f32; x.len()];
        for_each_row(&mut out, d, |r, out| {
            let x = &x[r * d..(r + 1) * d];
            let (mean, rstd) = row_stats(x, self.eps);
            for i in 0..d {
                out[i] = (x[i] - mean) * rstd * w[i] + b[i];
            }
        });
        Ok((CpuStorage::F32(out), xs_layout.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        xs: &candle_core::CudaStorage,
        xs_layout: &Layout,
        weight: &candle_core::CudaStorage,
        weight_layout: &Layout,
        bias: &candle_core::CudaStorage,
        bias_layout: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let x = cuda::view(self.name(), xs, xs_layout)?;
        let w = cuda::view(self.name(), weight, weight_layout)?;
        let b = cuda::view(self.name(), bias, bias_layout)?;
        let out = cuda::residual_layer_norm(&xs.device, &x, None, &w, &b, self.eps, None)?;
        Ok((
            candle_core::CudaStorage::wrap_cuda_slice(out, xs.device.clone()),
            xs_layout.shape().clone(),
        ))
    }

    fn bwd(
        &self,
        xs: &Tensor,
        weight: &Tensor,
        _bias: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad_res = grad_res.contiguous()?;
        #[cfg(feature = "cuda")]
        let (grad_xs, grad_params) = if xs.device().is_cuda() {
            let (grad_xs, _, grad_params) =
                cuda::residual_layer_norm_grads(xs, None, weight, &grad_res, self.eps, None)?;
            (grad_xs, grad_params)
        } else {
            self.cpu_grads(xs, weight, &grad_res)?
        };
        #[cfg(not(feature = "cuda"))]
        let (grad_xs, grad_params) = self.cpu_grads(xs, weight, &grad_res)?;
        let d = weight.elem_count();
        let grad_weight = grad_params.narrow(0, 0, d)?.reshape(weight.shape())?;
        let grad_bias = grad_params.narrow(0, d, d)?.reshape(weight.shape())?;
        Ok((Some(grad_xs), Some(grad_weight), Some(grad_bias)))
    }
}

/// Layer norm's gradients over rows of `x` (`w.len()` wide) given the output's gradient `g`:
/// the input's, and the weight's followed by the bias's (`2 * d`).
fn layer_norm_grads(x: &[f32], w: &[f32], g: &[f32], eps: f32) -> (Vec<f32>, Vec<f32>) {
    let d = w.len();
    let rows = x.len() / d;
    let row = |r: usize| (&x[r * d..(r + 1) * d], &g[r * d..(r + 1) * d]);
    let stats: Vec<(f32, f32)> = (0..rows)
        .into_par_iter()
        .map(|r| row_stats(row(r).0, eps))
        .collect();
    let mut grad_x = vec![0f32; x.len()];
    // With x̂ = (x - mean) rstd and gy = g w: dx = rstd (gy - mean(gy) - x̂ mean(gy x̂)).
    for_each_row(&mut grad_x, d, |r, grad_x| {
        let ((x, g), (mean, rstd)) = (row(r), stats[r]);
        let (mut sum_gy, mut sum_gy_xhat) = (0f32, 0f32);
        for i in 0..d {
            let gy = g[i] * w[i];
            sum_gy += gy;
            sum_gy_xhat += gy * (x[i] - mean) * rstd;
        }
        let (mean_gy, mean_gy_xhat) = (sum_gy / d as f32, sum_gy_xhat / d as f32);
        for i in 0..d {
            let xhat = (x[i] - mean) * rstd;
            grad_x[i] = rstd * (g[i] * w[i] - mean_gy - xhat * mean_gy_xhat);
        }
    });
    // The weight's gradient sums g x̂ over rows, the bias's sums g.
    let params = sum_over_tasks(rows, 2 * d, |rows| {
        let mut partial = vec![0f32; 2 * d];
        let (gw, gb) = partial.split_at_mut(d);
        for r in rows {
            let ((x, g), (mean, rstd)) = (row(r), stats[r]);
            for i in 0..d {
                gw[i] += g[i] * (x[i] - mean) * rstd;
                gb[i] += g[i];
            }
        }
        partial
    });
    (grad_x, params)
}

struct Linear;

impl Linear {
    /// `(rows, in, out)`, checked against the weight's and bias's sizes.
    fn dims(x: &Layout, w: &Layout, b_len: usize) -> Result<(usize, usize, usize)> {
        let (rows, inputs) = x.shape().dims2()?;
        let (outputs, w_inputs) = w.shape().dims2()?;
        if w_inputs != inputs || b_len != outputs {
            candle_core::bail!(
                "linear: input {:?}, weight {:?}, bias of {b_len}",
                x.shape(),
                w.shape()
            )
        }
        Ok((rows, inputs, outputs))
    }
}

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        "linear"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        w: &CpuStorage,
        w_layout: &Layout,
        b: &CpuStorage,
        b_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let b = f32_slice(self.name(), b, b_layout)?;
        let (rows, inputs, outputs) = Linear::dims(x_layout, w_layout, b.len())?;
        let x = f32_slice(self.name(), x, x_layout)?;
        let w = f32_slice(self.name(), w, w_layout)?;
        // The bias starts every row and the product is added to it.
        let mut out = Vec::with_capacity(rows * outputs);
        for _ in 0..rows {
            out.extend_from_slice(b);
        }
        matmul_parallel(
            &mut MatMut::rows(&mut out, rows, outputs, outputs),
            MatRef::rows(x, rows, inputs, inputs),
            MatRef::rows(w, outputs, inputs, inputs).t(),
            1.0,
            true,
        );
        Ok((CpuStorage::F32(out), Shape::from((rows, outputs))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad_res = grad_res.contiguous()?;
        let (rows, inputs, outputs) = Linear::dims(x.layout(), w.layout(), b.elem_count())?;
        let (grad_x, grad_w, grad_b) = with_values(self.name(), &[x, w, &grad_res], |v| {
            let (x, w, g) = (v[0], v[1], v[2]);
            let g_rows = MatRef::rows(g, rows, outputs, outputs);
            let grad_x = matmul_new(g_rows, MatRef::rows(w, outputs, inputs, inputs), 1.0, true);
            let grad_w = matmul_new(g_rows.t(), MatRef::rows(x, rows, inputs, inputs), 1.0, true);
            Ok((grad_x, grad_w, column_sums(g, outputs)))
        })?;
        let device = x.device();
        Ok((
            Some(Tensor::from_vec(grad_x, x.shape(), device)?),
            Some(Tensor::from_vec(grad_w, w.shape(), device)?),
            Some(Tensor::from_vec(grad_b, b.shape(), device)?),
        ))
    }
}

struct ResidualLayerNorm {
    eps: f32,
    dropout: Option<DropoutDraw>,
}

impl ResidualLayerNorm {
    /// Row `r` of `y * mask + residual` into `out`, which holds that row's keep-mask on entry
    /// when `masked` (else the sum is `y + residual`).
    fn sum_row(y: &[f32], residual: &[f32], masked: bool, r: usize, out: &mut [f32]) {
        let d = out.len();
        let (y, residual) = (&y[r * d..(r + 1) * d], &residual[r * d..(r + 1) * d]);
        for i in 0..d {
            let kept = if masked { y[i] * out[i] } else { y[i] };
            out[i] = kept + residual[i];
        }
    }

    /// The gradients of `y` (empty without dropout: it equals the residual's), the residual and
    /// the stacked weight and bias. Each row's mask is drawn once, into what becomes `y`'s
    /// gradient.
    fn grads(
        &self,
        y: &[f32],
        residual: &[f32],
        params: &[f32],
        g: &[f32],
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let d = params.len() / 2;
        let mut masks = Vec::new();
        if let Some(draw) = self.dropout {
            masks = vec![0f32; y.len()];
            for_each_row(&mut masks, d, |r, mask| draw.fill_keep_mask(r as u64, mask));
        }
        let masked = !masks.is_empty();
        let mut sums = if masked {
            masks.clone()
        } else {
            vec![0f32; y.len()]
        };
        for_each_row(&mut sums, d, |r, out| {
            Self::sum_row(y, residual, masked, r, out)
        });
        let (grad_sum, grad_params) = layer_norm_grads(&sums, &params[..d], g, self.eps);
        let mut grad_y = masks;
        grad_y.iter_mut().zip(&grad_sum).for_each(|(m, g)| *m *= g);
        (grad_y, grad_sum, grad_params)
    }
}

impl CustomOp3 for ResidualLayerNorm {
    fn name(&self) -> &'static str {
        "residual-layer-norm"
    }

    fn cpu_fwd(
        &self,
        y: &CpuStorage,
        y_layout: &Layout,
        residual: &CpuStorage,
        residual_layout: &Layout,
        params: &CpuStorage,
        params_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = last_dim(self.name(), y_layout)?;
        let y = f32_slice(self.name(), y, y_layout)?;
        let residual = f32_slice(self.name(), residual, residual_layout)?;
        let params = f32_slice(self.name(), params, params_layout)?;
        let (w, b) = params.split_at(d);
        let mut out = vec![0f32; y.len()];
        for_each_row(&mut out, d, |r, out| {
            // The output row holds the mask, then the sum, then the result.
            if let Some(draw) = self.dropout {
                draw.fill_keep_mask(r as u64, out);
            }
            Self::sum_row(y, residual, self.dropout.is_some(), r, out);
            let (mean, rstd) = row_stats(out, self.eps);
            for i in 0..d {
                out[i] = (out[i] - mean) * rstd * w[i] + b[i];
            }
        });
        Ok((CpuStorage::F32(out), y_layout.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        y: &candle_core::CudaStorage,
        y_layout: &Layout,
        residual: &candle_core::CudaStorage,
        residual_layout: &Layout,
        params: &candle_core::CudaStorage,
        params_layout: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let d = last_dim(self.name(), y_layout)?;
        let yv = cuda::view(self.name(), y, y_layout)?;
        let residual = cuda::view(self.name(), residual, residual_layout)?;
        let params = cuda::view(self.name(), params, params_layout)?;
        let (w, b) = (params.slice(..d), params.slice(d..));
        let out = cuda::residual_layer_norm(
            &y.device,
            &yv,
            Some(&residual),
            &w,
            &b,
            self.eps,
            self.dropout,
        )?;
        Ok((
            candle_core::CudaStorage::wrap_cuda_slice(out, y.device.clone()),
            y_layout.shape().clone(),
        ))
    }

    fn bwd(
        &self,
        y: &Tensor,
        residual: &Tensor,
        params: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad_res = grad_res.contiguous()?;
        #[cfg(feature = "cuda")]
        if y.device().is_cuda() {
            let d = params.elem_count() / 2;
            let (grad_sum, grad_y, grad_params) = cuda::residual_layer_norm_grads(
                y,
                Some(residual),
                &params.narrow(0, 0, d)?,
                &grad_res,
                self.eps,
                self.dropout,
            )?;
            return Ok((Some(grad_y), Some(grad_sum), Some(grad_params)));
        }
        let (grad_y, grad_residual, grad_params) =
            with_values(self.name(), &[y, residual, params, &grad_res], |v| {
                Ok(self.grads(v[0], v[1], v[2], v[3]))
            })?;
        let device = y.device();
        let grad_residual = Tensor::from_vec(grad_residual, y.shape(), device)?;
        // Without dropout both inputs were added as they are: one gradient serves both.
        let grad_y = match grad_y.is_empty() {
            true => grad_residual.clone(),
            false => Tensor::from_vec(grad_y, y.shape(), device)?,
        };
        let grad_params = Tensor::from_vec(grad_params, params.shape(), device)?;
        Ok((Some(grad_y), Some(grad_residual), Some(grad_params)))
    }
}

/// Runs `f` on the values of contiguous f32 CPU tensors: for backward passes that need more inputs
/// than a custom op takes.
fn with_values<R>(
    name: &str,
    tensors: &[&Tensor],
    f: impl FnOnce(&[&[f32]]) -> Result<R>,
) -> Result<R> {
    let guards: Vec<_> = tensors.iter().map(|t| t.storage_and_layout()).collect();
    let mut values = Vec::with_capacity(guards.len());
    for (storage, layout) in &guards {
        let Storage::Cpu(cpu) = &**storage else {
            candle_core::bail!("{name}: expected CPU tensors")
        };
        values.push(f32_slice(name, cpu, layout)?);
    }
    f(&values)
}

struct Softmax;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "softmax-trainable"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let d = last_dim(self.name(), layout)?;
        let x = f32_slice(self.name(), storage, layout)?;
        let mut out = vec![0f32; x.len()];
        for_each_row(&mut out, d, |r, out| {
            out.copy_from_slice(&x[r * d..(r + 1) * d]);
            softmax_in_place(out);
        });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            res.apply_op2_no_bwd(&grad_res.contiguous()?, &SoftmaxGrad)?,
        ))
    }
}

/// `(y, grad_y)` -> `y (grad_y - sum(grad_y y))`, row by row.
struct SoftmaxGrad;

impl CustomOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "softmax-trainable-grad"
    }

    fn cpu_fwd(
        &self,
        ys: &CpuStorage,
        ys_layout: &Layout,
        grad: &CpuStorage,
        grad_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = last_dim(self.name(), ys_layout)?;
        let y = f32_slice(self.name(), ys, ys_layout)?;
        let g = f32_slice(self.name(), grad, grad_layout)?;
        if g.len() != y.len() {
            candle_core::bail!("{}: mismatched shapes", self.name())
        }
        let mut out = vec![0f32; y.len()];
        for_each_row(&mut out, d, |r, out| {
            let (y, g) = (&y[r * d..(r + 1) * d], &g[r * d..(r + 1) * d]);
            let dot: f32 = y.iter().zip(g).map(|(a, b)| a * b).sum();
            for i in 0..d {
                out[i] = y[i] * (g[i] - dot);
            }
        });
        Ok((CpuStorage::F32(out), ys_layout.shape().clone()))
    }
}

/// `xs + bias`; backward, the output's gradient goes to `xs` and its sum over rows to the bias.
struct AddBias;

impl CustomOp2 for AddBias {
    fn name(&self) -> &'static str {
        "add-bias"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xs_layout: &Layout,
        bias: &CpuStorage,
        bias_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = last_dim(self.name(), xs_layout)?;
        let x = f32_slice(self.name(), xs, xs_layout)?;
        let b = f32_slice(self.name(), bias, bias_layout)?;
        let mut out = vec![0f32; x.len()];
        for_each_row(&mut out, d, |r, out| {
            let x = &x[r * d..(r + 1) * d];
            for i in 0..d {
                out[i] = x[i] + b[i];
            }
        });
        Ok((CpuStorage::F32(out), xs_layout.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        xs: &candle_core::CudaStorage,
        xs_layout: &Layout,
        bias: &candle_core::CudaStorage,
        bias_layout: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let x = cuda::view(self.name(), xs, xs_layout)?;
        let b = cuda::view(self.name(), bias, bias_layout)?;
        let out = cuda::add_bias(&xs.device, &x, &b)?;
        Ok((
            candle_core::CudaStorage::wrap_cuda_slice(out, xs.device.clone()),
            xs_layout.shape().clone(),
        ))
    }

    fn bwd(
        &self,
        _xs: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let sums = grad_res.contiguous()?.apply_op1_no_bwd(&RowSum)?;
        Ok((Some(grad_res.clone()), Some(sums.reshape(bias.shape())?)))
    }
}

/// `(rows, d)` -> `(d,)`: the sum of the rows.
struct RowSum;

impl CustomOp1 for RowSum {
    fn name(&self) -> &'static str {
        "row-sum"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let d = last_dim(self.name(), layout)?;
        let x = f32_slice(self.name(), storage, layout)?;
        Ok((CpuStorage::F32(column_sums(x, d)), Shape::from(d)))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        storage: &candle_core::CudaStorage,
        layout: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let d = last_dim(self.name(), layout)?;
        let x = cuda::view(self.name(), storage, layout)?;
        let sums = cuda::column_sums(&storage.device, &x, d)?;
        Ok((
            candle_core::CudaStorage::wrap_cuda_slice(sums, storage.device.clone()),
            Shape::from(d),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::max_diff;
    use candle_core::{DType, Device, Var, D};

    /// Deterministic values spread over about [-3, 3] (candle's CPU generator cannot be seeded).
    fn random(shape: &[usize], seed: u64) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let values = (0..n)
            .map(|i| 3.0 * ((i as f32 + 1.0) * (0.7 + seed as f32 * 0.37)).sin())
            .collect::<Vec<_>>();
        Tensor::from_vec(values, shape, &Device::Cpu)
    }

    #[test]
    fn layer_norm_values_and_gradients_match_primitive_ops() -> Result<()> {
        // 37 rows: more than one task, and a partial last one.
        let x = Var::from_tensor(&random(&[37, 24], 1)?)?;
        let w = Var::from_tensor(&(random(&[24], 2)? + 1.0)?)?;
        let b = Var::from_tensor(&random(&[24], 3)?)?;
        // A loss that weighs outputs unevenly, so every gradient term matters.
        let weights = random(&[37, 24], 4)?;
        let ours = layer_norm(x.as_tensor(), w.as_tensor(), b.as_tensor(), 1e-12)?;
        let theirs = primitive_layer_norm(x.as_tensor(), w.as_tensor(), b.as_tensor(), 1e-12)?;
        assert!(max_diff(&ours, &theirs) < 1e-5);
        let ours = (ours * &weights)?.sum_all()?.backward()?;
        let theirs = (theirs * &weights)?.sum_all()?.backward()?;
        for (name, var) in [("x", &x), ("weight", &w), ("bias", &b)] {
            let (a, b) = (ours.get(var).unwrap(), theirs.get(var).unwrap());
            let scale = b.abs()?.max_all()?.to_scalar::<f32>()?.max(1.0);
            let diff = max_diff(a, b);
            assert!(diff < 1e-4 * scale, "{name}: {diff} (scale {scale})");
        }
        Ok(())
    }

    #[test]
    fn linear_values_and_gradients_match_candle_ops() -> Result<()> {
        // 37 rows: more than one task of the bias's column sums, and a partial last one.
        let x = Var::from_tensor(&random(&[37, 12], 1)?)?;
        let w = Var::from_tensor(&random(&[7, 12], 2)?)?;
        let b = Var::from_tensor(&random(&[7], 3)?)?;
        let weights = random(&[37, 7], 4)?;
        let ours = linear(&x, &w, &b)?;
        let theirs = x.matmul(&w.t()?)?.broadcast_add(&b)?;
        assert!(max_diff(&ours, &theirs) < 1e-4);
        let ours = (ours * &weights)?.sum_all()?.backward()?;
        let theirs = (theirs * &weights)?.sum_all()?.backward()?;
        for (name, var) in [("x", &x), ("weight", &w), ("bias", &b)] {
            let diff = max_diff(ours.get(var).unwrap(), theirs.get(var).unwrap());
            assert!(diff < 1e-3, "{name}: {diff}");
        }
        let wrong = Tensor::zeros((7, 11), DType::F32, &Device::Cpu)?;
        assert!(linear(&x, &wrong, &b).is_err());
        Ok(())
    }

    #[test]
    fn residual_layer_norm_matches_its_steps() -> Result<()> {
        let (rows, d) = (37, 24);
        for dropout in [None, Some(DropoutDraw { p: 0.25, seed: 3 })] {
            let y = Var::from_tensor(&random(&[rows, d], 1)?)?;
            let residual = Var::from_tensor(&random(&[rows, d], 2)?)?;
            let w = Var::from_tensor(&(random(&[d], 3)? + 1.0)?)?;
            let b = Var::from_tensor(&random(&[d], 4)?)?;
            let weights = random(&[rows, d], 5)?;
            let ours = residual_layer_norm(&y, &residual, &w, &b, 1e-12, dropout)?;
            // The same from primitive ops, with the kernel's masks.
            let dropped = match dropout {
                Some(draw) => {
                    let mask: Vec<f32> = (0..rows)
                        .flat_map(|r| draw.keep_mask(r as u64, d))
                        .collect();
                    assert!(mask.contains(&0.0));
                    (y.as_tensor() * Tensor::from_vec(mask, (rows, d), &Device::Cpu)?)?
                }
                None => y.as_tensor().clone(),
            };
            let theirs = primitive_layer_norm(&(dropped + residual.as_tensor())?, &w, &b, 1e-12)?;
            assert!(max_diff(&ours, &theirs) < 1e-5);
            let ours = (ours * &weights)?.sum_all()?.backward()?;
            let theirs = (theirs * &weights)?.sum_all()?.backward()?;
            for (name, var) in [
                ("y", &y),
                ("residual", &residual),
                ("weight", &w),
                ("bias", &b),
            ] {
                let (a, b) = (ours.get(var).unwrap(), theirs.get(var).unwrap());
                let scale = b.abs()?.max_all()?.to_scalar::<f32>()?.max(1.0);
                let diff = max_diff(a, b);
                assert!(
                    diff < 1e-4 * scale,
                    "{name} {dropout:?}: {diff} (scale {scale})"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn softmax_values_and_gradients_match_candle() -> Result<()> {
        let x = Var::from_tensor(&random(&[3, 5, 19], 5)?)?;
        let weights = random(&[3, 5, 19], 6)?;
        let ours = softmax_last_dim(x.as_tensor())?;
        let theirs = candle_nn::ops::softmax(x.as_tensor(), D::Minus1)?;
        assert!(max_diff(&ours, &theirs) < 1e-6);
        let ours = (ours * &weights)?.sum_all()?.backward()?;
        let theirs = (theirs * &weights)?.sum_all()?.backward()?;
        let diff = max_diff(ours.get(&x).unwrap(), theirs.get(&x).unwrap());
        assert!(diff < 1e-5, "{diff}");
        Ok(())
    }

    #[test]
    fn bias_values_and_gradients_match_broadcast_add() -> Result<()> {
        // 70 rows: more than one task of RowSum, and a partial last one.
        let x = Var::from_tensor(&random(&[70, 9], 7)?)?;
        let b = Var::from_tensor(&random(&[9], 8)?)?;
        let weights = random(&[70, 9], 9)?;
        let ours = add_bias(x.as_tensor(), b.as_tensor())?;
        let theirs = x.as_tensor().broadcast_add(b.as_tensor())?;
        assert_eq!(max_diff(&ours, &theirs), 0.0);
        let ours = (ours * &weights)?.sum_all()?.backward()?;
        let theirs = (theirs * &weights)?.sum_all()?.backward()?;
        for (name, var) in [("x", &x), ("bias", &b)] {
            let diff = max_diff(ours.get(var).unwrap(), theirs.get(var).unwrap());
            assert!(diff < 1e-4, "{name}: {diff}");
        }
        Ok(())
    }

    #[test]
    fn masked_scores_give_zero_probability() -> Result<()> {
        let x = Tensor::new(&[[1f32, 2., -30_000.], [0., -30_000., 0.]], &Device::Cpu)?;
        let p = softmax_last_dim(&x)?.to_vec2::<f32>()?;
        assert_eq!(p[0][2], 0.0);
        assert_eq!(p[1][1], 0.0);
        assert!((p[1][0] - 0.5).abs() < 1e-6);
        assert_eq!(x.dtype(), DType::F32);
        Ok(())
    }
}

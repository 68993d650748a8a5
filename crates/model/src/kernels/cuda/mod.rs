//! The CUDA side of the training kernels: launches of the kernels in `kernels.cu` (compiled to PTX
//! by build.rs) for the fused ops of [`super::fused`] and [`super::activations`], the grid
//! attention's weights ([`attention_probs`]) and the trainer's AdamW.
//!
//! Off unless `MULTITAG_CUDA_KERNELS=on`. They were written on a machine without a GPU: until the
//! tests below have passed on one, the composed candle ops stay CUDA's default.
use std::sync::OnceLock;

use candle_core::cuda_backend::cudarc::driver::{CudaSlice, CudaView, LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::{CudaDevice, WrapErr};
use candle_core::op::BackpropOp;
use candle_core::{CudaStorage, CustomOp2, DType, Layout, Result, Shape, Storage, Tensor};

use super::dropout::DropoutDraw;

const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/kernels.ptx"));
const MODULE: &str = "multitag-training";

/// Threads per block of the row kernels: eight warps, a row each (ROWS_PER_BLOCK in kernels.cu).
const ROW_THREADS: u32 = 256;
const ROWS_PER_BLOCK: usize = 8;
/// Rows per block of `column_sums` (COLUMN_ROWS in kernels.cu).
const COLUMN_ROWS: usize = 256;

/// Set by [`set_enabled`]; unset, the environment decides.
static SWITCH: OnceLock<bool> = OnceLock::new();

/// Whether the kernels are on: as [`set_enabled`] set it, else whether `MULTITAG_CUDA_KERNELS=on`.
pub fn enabled() -> bool {
    *SWITCH.get_or_init(|| std::env::var("MULTITAG_CUDA_KERNELS").is_ok_and(|v| v == "on"))
}

/// Switches the kernels on or off for the process, before their first use (later calls, and calls
/// after the first [`enabled`], keep the first setting). Returns the setting in force.
pub fn set_enabled(on: bool) -> bool {
    *SWITCH.get_or_init(|| on)
}

/// Whether the kernels apply: every tensor f32 on a CUDA device, and the kernels switched on. The
/// switch is read last, so that work on the CPU never fixes it.
pub(crate) fn applies(tensors: &[&Tensor]) -> bool {
    tensors
        .iter()
        .all(|t| t.device().is_cuda() && t.dtype() == DType::F32)
        && enabled()
}

/// A dropout draw as the kernels take it: seed, the 16-bit threshold below which an element is
/// dropped and the scale of the kept ones, computed as `DropoutRng::fill_mask` does. None is a
/// threshold of 0.
fn dropout_args(dropout: Option<DropoutDraw>) -> (u64, u32, f32) {
    match dropout {
        Some(draw) => (
            draw.seed,
            (draw.p as f64 * 65536.0) as u32,
            1.0 / (1.0 - draw.p),
        ),
        None => (0, 0, 1.0),
    }
}

fn function(
    device: &CudaDevice,
    name: &str,
) -> Result<candle_core::cuda_backend::cudarc::driver::CudaFunction> {
    Ok(device
        .get_or_load_custom_func(name, MODULE, PTX)?
        .into_cuda_function())
}

fn rows_config(rows: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (rows.div_ceil(ROWS_PER_BLOCK).max(1) as u32, 1, 1),
        block_dim: (ROW_THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Grid-stride kernels: enough blocks to fill the GPU, not one per 256 elements of a large tensor.
fn elementwise_config(n: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (n.div_ceil(256).clamp(1, 4096) as u32, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// The contiguous f32 view of a storage under `layout`.
pub(crate) fn view<'a>(
    name: &str,
    storage: &'a CudaStorage,
    layout: &Layout,
) -> Result<CudaView<'a, f32>> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{name}: expected a contiguous input")
    };
    Ok(storage.as_cuda_slice::<f32>()?.slice(start..end))
}

/// Runs `f` on the views of contiguous f32 CUDA tensors, for backward passes.
fn with_views<R>(
    name: &str,
    tensors: &[&Tensor],
    f: impl FnOnce(&CudaDevice, &[CudaView<'_, f32>]) -> Result<R>,
) -> Result<R> {
    let Some(candle_core::Device::Cuda(device)) = tensors.first().map(|t| t.device()) else {
        candle_core::bail!("{name}: expected CUDA tensors")
    };
    let guards: Vec<_> = tensors.iter().map(|t| t.storage_and_layout()).collect();
    let mut views = Vec::with_capacity(guards.len());
    for (storage, layout) in &guards {
        let Storage::Cuda(cuda) = &**storage else {
            candle_core::bail!("{name}: expected CUDA tensors")
        };
        views.push(view(name, cuda, layout)?);
    }
    f(device, &views)
}

/// A tensor over a kernel's output, outside the autograd graph (a gradient, or a custom op's
/// result that candle attaches to the graph itself).
pub(crate) fn tensor(
    slice: CudaSlice<f32>,
    device: &CudaDevice,
    shape: impl Into<Shape>,
) -> Tensor {
    let storage = CudaStorage::wrap_cuda_slice(slice, device.clone());
    Tensor::from_storage(Storage::Cuda(storage), shape, BackpropOp::none(), false)
}

fn empty(device: &CudaDevice, n: usize) -> Result<CudaSlice<f32>> {
    // SAFETY: every element is written by the kernel that follows.
    unsafe { device.alloc::<f32>(n) }
}

/// `layer_norm(y * keep + residual)` over rows of `w.len()`, or of `y` alone without a residual.
pub(crate) fn residual_layer_norm(
    device: &CudaDevice,
    y: &CudaView<'_, f32>,
    residual: Option<&CudaView<'_, f32>>,
    w: &CudaView<'_, f32>,
    b: &CudaView<'_, f32>,
    eps: f32,
    dropout: Option<DropoutDraw>,
) -> Result<CudaSlice<f32>> {
    let d = w.len();
    let rows = y.len() / d;
    let out = empty(device, y.len())?;
    let (seed, threshold, keep) = dropout_args(dropout);
    let func = function(device, "residual_layer_norm_fwd")?;
    let stream = device.cuda_stream();
    let mut launch = stream.launch_builder(&func);
    let null = 0u64;
    let (rows_arg, d_arg) = (rows as i64, d as i32);
    launch.arg(y);
    match residual {
        Some(r) => launch.arg(r),
        None => launch.arg(&null),
    };
    launch
        .arg(w)
        .arg(b)
        .arg(&out)
        .arg(&rows_arg)
        .arg(&d_arg)
        .arg(&eps)
        .arg(&seed)
        .arg(&threshold)
        .arg(&keep);
    // SAFETY: the arguments match the kernel's signature; every row lies within `y` and `out`.
    unsafe { launch.launch(rows_config(rows)) }.w()?;
    Ok(out)
}

/// The gradients of [`residual_layer_norm`] given the output's, `g`: of the sum (the residual's),
/// of `y` (the sum's times the mask; the sum's itself without dropout), and of the weight and bias
/// stacked (`2 * d`).
pub(crate) fn residual_layer_norm_grads(
    y: &Tensor,
    residual: Option<&Tensor>,
    w: &Tensor,
    g: &Tensor,
    eps: f32,
    dropout: Option<DropoutDraw>,
) -> Result<(Tensor, Tensor, Tensor)> {
    let g = g.contiguous()?;
    let mut inputs = vec![y, w, &g];
    inputs.extend(residual);
    with_views("residual-layer-norm-grad", &inputs, |device, v| {
        let (y, w, g) = (&v[0], &v[1], &v[2]);
        let d = w.len();
        let rows = y.len() / d;
        let grad_sum = empty(device, y.len())?;
        let xhat = empty(device, y.len())?;
        let (seed, threshold, keep) = dropout_args(dropout);
        let grad_y = match dropout {
            Some(_) => Some(empty(device, y.len())?),
            None => None,
        };
        let func = function(device, "residual_layer_norm_bwd")?;
        let stream = device.cuda_stream();
        let mut launch = stream.launch_builder(&func);
        let null = 0u64;
        let (rows_arg, d_arg) = (rows as i64, d as i32);
        launch.arg(y);
        match v.get(3) {
            Some(r) => launch.arg(r),
            None => launch.arg(&null),
        };
        launch.arg(w).arg(g).arg(&grad_sum);
        match &grad_y {
            Some(grad_y) => launch.arg(grad_y),
            None => launch.arg(&null),
        };
        launch
            .arg(&xhat)
            .arg(&rows_arg)
            .arg(&d_arg)
            .arg(&eps)
            .arg(&seed)
            .arg(&threshold)
            .arg(&keep);
        // SAFETY: as in residual_layer_norm; grad_y is written only when dropout applies.
        unsafe { launch.launch(rows_config(rows)) }.w()?;
        let grad_params = column_sums_into(device, g, Some(&xhat.slice(..)), rows, d)?;
        let shape = inputs[0].shape();
        let grad_sum = tensor(grad_sum, device, shape);
        let grad_y = match grad_y {
            Some(grad_y) => tensor(grad_y, device, shape),
            None => grad_sum.clone(),
        };
        Ok((grad_sum, grad_y, tensor(grad_params, device, 2 * d)))
    })
}

/// Sums over rows of `d`: with `xhat`, Σ g x̂ then Σ g (`2 * d`); without, Σ g (`d`).
fn column_sums_into(
    device: &CudaDevice,
    g: &CudaView<'_, f32>,
    xhat: Option<&CudaView<'_, f32>>,
    rows: usize,
    d: usize,
) -> Result<CudaSlice<f32>> {
    let out = device.alloc_zeros::<f32>(if xhat.is_some() { 2 * d } else { d })?;
    let func = function(device, "column_sums")?;
    let stream = device.cuda_stream();
    let mut launch = stream.launch_builder(&func);
    let null = 0u64;
    let (rows_arg, d_arg) = (rows as i64, d as i32);
    launch.arg(g);
    match xhat {
        Some(x) => launch.arg(x),
        None => launch.arg(&null),
    };
    launch.arg(&out).arg(&rows_arg).arg(&d_arg);
    let config = LaunchConfig {
        grid_dim: (
            d.div_ceil(32) as u32,
            rows.div_ceil(COLUMN_ROWS).max(1) as u32,
            1,
        ),
        block_dim: (32, 8, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: the arguments match the kernel's signature; reads stay within rows x d.
    unsafe { launch.launch(config) }.w()?;
    Ok(out)
}

/// The sum of the rows (`d` wide) of `g`: a broadcast bias's gradient.
pub(crate) fn column_sums(
    device: &CudaDevice,
    g: &CudaView<'_, f32>,
    d: usize,
) -> Result<CudaSlice<f32>> {
    column_sums_into(device, g, None, g.len() / d.max(1), d)
}

/// `out = f(x)` or `out = f(x, g)` by an elementwise kernel.
pub(crate) fn elementwise(
    device: &CudaDevice,
    kernel: &str,
    inputs: &[&CudaView<'_, f32>],
) -> Result<CudaSlice<f32>> {
    let n = inputs[0].len();
    let out = empty(device, n)?;
    let func = function(device, kernel)?;
    let stream = device.cuda_stream();
    let mut launch = stream.launch_builder(&func);
    for input in inputs {
        launch.arg(*input);
    }
    let n_arg = n as i64;
    launch.arg(&out).arg(&n_arg);
    // SAFETY: the inputs have n elements each, as the grid-stride loop assumes.
    unsafe { launch.launch(elementwise_config(n)) }.w()?;
    Ok(out)
}

/// `x + b`, `b` broadcast over rows of its length.
pub(crate) fn add_bias(
    device: &CudaDevice,
    x: &CudaView<'_, f32>,
    b: &CudaView<'_, f32>,
) -> Result<CudaSlice<f32>> {
    let n = x.len();
    let out = empty(device, n)?;
    let func = function(device, "add_bias")?;
    let stream = device.cuda_stream();
    let mut launch = stream.launch_builder(&func);
    let (n_arg, d_arg) = (n as i64, b.len() as i32);
    launch.arg(x).arg(b).arg(&out).arg(&n_arg).arg(&d_arg);
    // SAFETY: x and out hold n elements; b's index is taken modulo its length.
    unsafe { launch.launch(elementwise_config(n)) }.w()?;
    Ok(out)
}

/// AdamW's moment update in place: `m = beta m + (1 - beta) (scale g)`, squared with `square`.
pub fn adamw_moment(
    m: &mut CudaStorage,
    m_layout: &Layout,
    g: &CudaStorage,
    g_layout: &Layout,
    (beta, scale, square): (f32, f32, bool),
) -> Result<()> {
    let device = m.device.clone();
    let g = view("adamw-moment", g, g_layout)?;
    let Some((start, end)) = m_layout.contiguous_offsets() else {
        candle_core::bail!("adamw-moment: expected a contiguous moment")
    };
    if end - start != g.len() {
        candle_core::bail!("adamw-moment: moment and gradient sizes differ")
    }
    let mut m = m.as_cuda_slice_mut::<f32>()?.slice_mut(start..end);
    let func = function(&device, "adamw_moment")?;
    let stream = device.cuda_stream();
    let mut launch = stream.launch_builder(&func);
    let (n, square) = (g.len() as i64, square as i32);
    launch
        .arg(&mut m)
        .arg(&g)
        .arg(&n)
        .arg(&beta)
        .arg(&scale)
        .arg(&square);
    // SAFETY: m and g both hold n elements.
    unsafe { launch.launch(elementwise_config(g.len())) }.w()?;
    Ok(())
}

/// AdamW's parameter update in place: `p = p decay - lr (m / bias1) / (sqrt(v / bias2) + eps)`.
pub fn adamw_update(
    p: &mut CudaStorage,
    p_layout: &Layout,
    m: (&CudaStorage, &Layout),
    v: (&CudaStorage, &Layout),
    [decay, lr, bias1, bias2, eps]: [f32; 5],
) -> Result<()> {
    let device = p.device.clone();
    let m = view("adamw-update", m.0, m.1)?;
    let v = view("adamw-update", v.0, v.1)?;
    let Some((start, end)) = p_layout.contiguous_offsets() else {
        candle_core::bail!("adamw-update: expected a contiguous parameter")
    };
    if end - start != m.len() || m.len() != v.len() {
        candle_core::bail!("adamw-update: parameter and moment sizes differ")
    }
    let mut p = p.as_cuda_slice_mut::<f32>()?.slice_mut(start..end);
    let func = function(&device, "adamw_update")?;
    let stream = device.cuda_stream();
    let mut launch = stream.launch_builder(&func);
    let n = m.len() as i64;
    launch
        .arg(&mut p)
        .arg(&m)
        .arg(&v)
        .arg(&n)
        .arg(&decay)
        .arg(&lr)
        .arg(&bias1)
        .arg(&bias2)
        .arg(&eps);
    // SAFETY: p, m and v all hold n elements.
    unsafe { launch.launch(elementwise_config(m.len())) }.w()?;
    Ok(())
}

/// Attention weights from raw `(batch, heads, queries, keys)` scores and the additive
/// `(batch, 1, 1, keys)` padding mask: `dropout(softmax(scores * scale + mask))` in one pass, and
/// one pass back (the softmax recomputed from the scores, the mask redrawn). The composed ops it
/// replaces take about a dozen passes over the scores forward and twice that backward.
pub(crate) fn attention_probs(
    scores: &Tensor,
    additive_mask: &Tensor,
    scale: f32,
    dropout: Option<DropoutDraw>,
) -> Result<Tensor> {
    let (b, _, _, keys) = scores.dims4()?;
    if additive_mask.dims() != [b, 1, 1, keys] {
        candle_core::bail!(
            "attention-probs: mask {:?} for scores {:?}",
            additive_mask.shape(),
            scores.shape()
        )
    }
    scores.contiguous()?.apply_op2(
        &additive_mask.contiguous()?,
        AttentionProbs { scale, dropout },
    )
}

struct AttentionProbs {
    scale: f32,
    dropout: Option<DropoutDraw>,
}

impl AttentionProbs {
    /// Launches the forward (`grad` None) or backward kernel; returns its output.
    fn launch(
        &self,
        device: &CudaDevice,
        scores: &CudaView<'_, f32>,
        mask: &CudaView<'_, f32>,
        grad: Option<&CudaView<'_, f32>>,
        batch: usize,
    ) -> Result<CudaSlice<f32>> {
        let keys = mask.len() / batch;
        let rows = scores.len() / keys;
        let out = empty(device, scores.len())?;
        let (seed, threshold, keep) = dropout_args(self.dropout);
        let kernel = match grad {
            None => "attention_probs_fwd",
            Some(_) => "attention_probs_bwd",
        };
        let func = function(device, kernel)?;
        let stream = device.cuda_stream();
        let mut launch = stream.launch_builder(&func);
        let (rows_arg, keys_arg, per_item) = (rows as i64, keys as i32, (rows / batch) as i64);
        launch.arg(scores).arg(mask);
        if let Some(grad) = grad {
            launch.arg(grad);
        }
        launch
            .arg(&out)
            .arg(&rows_arg)
            .arg(&keys_arg)
            .arg(&per_item)
            .arg(&self.scale)
            .arg(&seed)
            .arg(&threshold)
            .arg(&keep);
        // SAFETY: the arguments match the kernel's signature; rows x keys elements each.
        unsafe { launch.launch(rows_config(rows)) }.w()?;
        Ok(out)
    }
}

impl CustomOp2 for AttentionProbs {
    fn name(&self) -> &'static str {
        "attention-probs"
    }

    fn cpu_fwd(
        &self,
        _: &candle_core::CpuStorage,
        _: &Layout,
        _: &candle_core::CpuStorage,
        _: &Layout,
    ) -> Result<(candle_core::CpuStorage, Shape)> {
        candle_core::bail!("attention-probs: CUDA only")
    }

    fn cuda_fwd(
        &self,
        scores: &CudaStorage,
        scores_layout: &Layout,
        mask: &CudaStorage,
        mask_layout: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let batch = scores_layout.dims()[0];
        let (s, m) = (
            view(self.name(), scores, scores_layout)?,
            view(self.name(), mask, mask_layout)?,
        );
        let out = self.launch(&scores.device, &s, &m, None, batch)?;
        let storage = CudaStorage::wrap_cuda_slice(out, scores.device.clone());
        Ok((storage, scores_layout.shape().clone()))
    }

    fn bwd(
        &self,
        scores: &Tensor,
        mask: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad_res = grad_res.contiguous()?;
        let batch = scores.dims()[0];
        let grad = with_views(self.name(), &[scores, mask, &grad_res], |device, v| {
            let out = self.launch(device, &v[0], &v[1], Some(&v[2]), batch)?;
            Ok(tensor(out, device, scores.shape()))
        })?;
        Ok((Some(grad), None))
    }
}

/// Rows of a 2-D `table` by u32 `ids` of any shape (`ids.shape + (width,)`): `index_select` along
/// the first dimension, as embedding lookups and the packing of token rows use it. candle's
/// backward pass for that (`index_add`) runs one thread per column, each looping over every id
/// (a single block for 384 columns); here every element of the gradient has its own thread.
pub(crate) fn gather_rows(table: &Tensor, ids: &Tensor) -> Result<Tensor> {
    let (_, hidden) = table.dims2()?;
    let mut shape = ids.dims().to_vec();
    shape.push(hidden);
    let flat = ids.flatten_all()?.to_dtype(DType::U32)?.contiguous()?;
    table
        .contiguous()?
        .apply_op2(&flat, GatherRows)?
        .reshape(shape)
}

struct GatherRows;

impl GatherRows {
    /// Launches `kernel` over the ids' rows: the gather (`values` the table) or its backward pass
    /// (`values` the output's gradient, `out` the zeroed table gradient).
    fn launch(
        device: &CudaDevice,
        kernel: &str,
        values: &CudaView<'_, f32>,
        ids: &CudaView<'_, u32>,
        out: &CudaSlice<f32>,
        (hidden, vocab): (usize, usize),
    ) -> Result<()> {
        let n = ids.len() * hidden;
        let func = function(device, kernel)?;
        let stream = device.cuda_stream();
        let mut launch = stream.launch_builder(&func);
        let (n_arg, h_arg, vocab_arg) = (n as i64, hidden as i32, vocab as u32);
        launch
            .arg(values)
            .arg(ids)
            .arg(out)
            .arg(&n_arg)
            .arg(&h_arg)
            .arg(&vocab_arg);
        // SAFETY: ids index rows below `vocab` only (the kernels skip others); n elements out.
        unsafe { launch.launch(elementwise_config(n)) }.w()?;
        Ok(())
    }
}

fn ids_view<'a>(
    name: &str,
    storage: &'a CudaStorage,
    layout: &Layout,
) -> Result<CudaView<'a, u32>> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{name}: expected contiguous ids")
    };
    Ok(storage.as_cuda_slice::<u32>()?.slice(start..end))
}

impl CustomOp2 for GatherRows {
    fn name(&self) -> &'static str {
        "gather-rows"
    }

    fn cpu_fwd(
        &self,
        _: &candle_core::CpuStorage,
        _: &Layout,
        _: &candle_core::CpuStorage,
        _: &Layout,
    ) -> Result<(candle_core::CpuStorage, Shape)> {
        candle_core::bail!("gather-rows: CUDA only")
    }

    fn cuda_fwd(
        &self,
        table: &CudaStorage,
        table_layout: &Layout,
        ids: &CudaStorage,
        ids_layout: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let (vocab, hidden) = table_layout.shape().dims2()?;
        let t = view(self.name(), table, table_layout)?;
        let ids = ids_view(self.name(), ids, ids_layout)?;
        let out = empty(&table.device, ids.len() * hidden)?;
        Self::launch(
            &table.device,
            "gather_rows_fwd",
            &t,
            &ids,
            &out,
            (hidden, vocab),
        )?;
        let shape = Shape::from((ids.len(), hidden));
        Ok((
            CudaStorage::wrap_cuda_slice(out, table.device.clone()),
            shape,
        ))
    }

    fn bwd(
        &self,
        table: &Tensor,
        ids: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (vocab, hidden) = table.dims2()?;
        let grad_res = grad_res.contiguous()?;
        let (grad, grad_layout) = grad_res.storage_and_layout();
        let (ids_storage, ids_layout) = ids.storage_and_layout();
        let (Storage::Cuda(grad), Storage::Cuda(ids_storage)) = (&*grad, &*ids_storage) else {
            candle_core::bail!("{}: expected CUDA tensors", self.name())
        };
        let g = view(self.name(), grad, grad_layout)?;
        let ids = ids_view(self.name(), ids_storage, ids_layout)?;
        let out = grad.device.alloc_zeros::<f32>(vocab * hidden)?;
        Self::launch(
            &grad.device,
            "gather_rows_bwd",
            &g,
            &ids,
            &out,
            (hidden, vocab),
        )?;
        Ok((Some(tensor(out, &grad.device, (vocab, hidden))), None))
    }
}

#[cfg(test)]
mod tests;

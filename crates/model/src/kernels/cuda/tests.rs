//! The CUDA kernels against the CPU kernels and composed candle ops, forward and backward, with the
//! same dropout masks. They need a GPU: build them with `--features cuda` and run them where one is.
use candle_core::{DType, Device, Module, Result, Tensor, Var, D};

use crate::kernels::DropoutDraw;
use crate::testing::max_diff;

fn gpu() -> Device {
    assert!(super::set_enabled(true), "CUDA kernels switched off");
    Device::new_cuda(0).expect("a CUDA device")
}

fn random(shape: &[usize], seed: u64) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let values: Vec<f32> = (0..n)
        .map(|i| ((i as u64 * 2_654_435_761 + seed * 97) % 1000) as f32 / 250.0 - 2.0)
        .collect();
    Tensor::from_vec(values, shape, &Device::Cpu)
}

/// `f` on the CPU and on the GPU over the same inputs (made variables): the output's largest
/// difference, and each input gradient's for the loss `sum(out * weights)`.
fn compare(inputs: &[Tensor], f: impl Fn(&[Tensor]) -> Result<Tensor>) -> Result<(f32, Vec<f32>)> {
    let gpu = gpu();
    let run = |device: &Device| -> Result<(Tensor, Vec<Tensor>)> {
        let vars: Vec<Var> = inputs
            .iter()
            .map(|t| Var::from_tensor(&t.to_device(device)?))
            .collect::<Result<_>>()?;
        let tensors: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let out = f(&tensors)?;
        let weights = random(out.dims(), 5)?.to_device(device)?;
        let grads = (&out * weights)?.sum_all()?.backward()?;
        let grads = vars
            .iter()
            .map(|v| {
                let g = grads
                    .get(v.as_tensor())
                    .expect("a gradient for every input");
                g.to_device(&Device::Cpu)
            })
            .collect::<Result<_>>()?;
        Ok((out.to_device(&Device::Cpu)?, grads))
    };
    let (cpu_out, cpu_grads) = run(&Device::Cpu)?;
    let (gpu_out, gpu_grads) = run(&gpu)?;
    let grad_diffs = cpu_grads
        .iter()
        .zip(&gpu_grads)
        .map(|(a, b)| max_diff(a, b))
        .collect();
    Ok((max_diff(&cpu_out, &gpu_out), grad_diffs))
}

fn assert_small(what: &str, (out, grads): (f32, Vec<f32>)) {
    assert!(out < 1e-4, "{what}: output differs by {out}");
    for (i, g) in grads.iter().enumerate() {
        assert!(*g < 1e-3, "{what}: gradient of input {i} differs by {g}");
    }
}

#[test]
fn layer_norm_matches_the_cpu_kernel() -> Result<()> {
    for (rows, d) in [(37, 384), (5, 50)] {
        let inputs = [random(&[rows, d], 1)?, random(&[d], 2)?, random(&[d], 3)?];
        let result = compare(&inputs, |t| {
            crate::kernels::layer_norm(&t[0], &t[1], &t[2], 1e-12)
        })?;
        assert_small(&format!("layer norm {rows}x{d}"), result);
    }
    Ok(())
}

#[test]
fn residual_layer_norm_matches_the_cpu_kernel_and_its_masks() -> Result<()> {
    for dropout in [None, Some(DropoutDraw { p: 0.1, seed: 7 })] {
        let (rows, d) = (300, 384);
        let inputs = [
            random(&[rows, d], 1)?,
            random(&[rows, d], 2)?,
            random(&[d], 3)?,
            random(&[d], 4)?,
        ];
        let result = compare(&inputs, |t| {
            crate::kernels::residual_layer_norm(&t[0], &t[1], &t[2], &t[3], 1e-12, dropout)
        })?;
        assert_small(&format!("residual layer norm, dropout {dropout:?}"), result);
    }
    Ok(())
}

#[test]
fn bias_and_its_column_sums_match_the_cpu_kernel() -> Result<()> {
    // More rows than one block of column sums takes, and a width that is no multiple of 32.
    let inputs = [random(&[1000, 70], 1)?, random(&[70], 2)?];
    let result = compare(&inputs, |t| crate::kernels::add_bias(&t[0], &t[1]))?;
    assert_small("add bias", result);
    Ok(())
}

#[test]
fn gelu_matches_the_cpu_kernel() -> Result<()> {
    let inputs = [random(&[3, 1000], 1)?];
    let result = compare(&inputs, |t| crate::kernels::gelu_erf(&t[0]))?;
    assert_small("gelu", result);
    Ok(())
}

/// The fused attention weights against the composed ops on the CPU, with the keep-masks the CPU's
/// dropout streams give each row, and padded keys.
#[test]
fn attention_probs_match_the_composed_ops() -> Result<()> {
    let (batch, heads, queries, keys) = (3, 4, 6, 40);
    let lengths = [40, 17, 1];
    let mask: Vec<f32> = lengths
        .iter()
        .flat_map(|&len| (0..keys).map(move |k| (k < len) as u32 as f32))
        .collect();
    let mask = Tensor::from_vec(mask, (batch, keys), &Device::Cpu)?;
    let additive = crate::models::bert::additive_attention_mask(&mask, DType::F32)?;
    let scale = 0.35;
    for dropout in [None, Some(DropoutDraw { p: 0.1, seed: 11 })] {
        let rows = batch * heads * queries;
        let keep = match dropout {
            Some(draw) => (0..rows)
                .flat_map(|row| draw.keep_mask(row as u64, keys))
                .collect(),
            None => vec![1f32; rows * keys],
        };
        let keep = Tensor::from_vec(keep, (batch, heads, queries, keys), &Device::Cpu)?;
        let inputs = [random(&[batch, heads, queries, keys], 1)?];
        let additive = additive.clone();
        let result = compare(&inputs, |t| {
            let mask = additive.to_device(t[0].device())?;
            if t[0].device().is_cuda() {
                return super::attention_probs(&t[0], &mask, scale as f32, dropout);
            }
            let scores = (&t[0] * scale)?.broadcast_add(&mask)?;
            candle_nn::ops::softmax(&scores, D::Minus1)? * &keep
        })?;
        assert_small(&format!("attention weights, dropout {dropout:?}"), result);
    }
    Ok(())
}

/// The gather and its table gradient against candle's (an embedding lookup: index_select,
/// index_add) on the CPU, with ids repeated so that rows of the gradient sum several outputs.
#[test]
fn gathered_rows_match_candle() -> Result<()> {
    let gpu = gpu();
    let ids = Tensor::from_vec(
        (0..27u32).map(|i| i * 7 % 11).collect::<Vec<_>>(),
        (3, 9),
        &Device::Cpu,
    )?;
    let table = random(&[50, 70], 1)?;
    let weights = random(&[3, 9, 70], 2)?;
    let run = |device: &Device| -> Result<(Tensor, Tensor)> {
        let table = Var::from_tensor(&table.to_device(device)?)?;
        let ids = ids.to_device(device)?;
        let out = match device.is_cuda() {
            true => super::gather_rows(table.as_tensor(), &ids)?,
            false => candle_nn::Embedding::new(table.as_tensor().clone(), 70).forward(&ids)?,
        };
        let grads = (&out * weights.to_device(device)?)?.sum_all()?.backward()?;
        let grad = grads
            .get(table.as_tensor())
            .expect("a table gradient")
            .clone();
        Ok((out.to_device(&Device::Cpu)?, grad.to_device(&Device::Cpu)?))
    };
    let ((cpu_out, cpu_grad), (gpu_out, gpu_grad)) = (run(&Device::Cpu)?, run(&gpu)?);
    assert_eq!(gpu_out.dims(), [3, 9, 70]);
    assert!(max_diff(&cpu_out, &gpu_out) == 0.0, "lookup");
    assert!(max_diff(&cpu_grad, &gpu_grad) < 1e-5, "table gradient");
    Ok(())
}

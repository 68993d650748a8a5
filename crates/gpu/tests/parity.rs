//! The wgpu encoder against the CPU encoder (candle) on the same weights and inputs: hidden
//! states of every real token within 1e-4, on a small random BERT with right-padded rows of
//! different lengths, an empty row, and a tagger's own layers above the embedding depth.
//!
//! Staged as the browser runs it ([`multitag_gpu::staged`]), a prediction gets the same results,
//! and a GPU failure comes back for the CPU to take over.
//!
//! Without an adapter these tests say so and pass, unless `MULTITAG_REQUIRE_GPU=1` (the test
//! command sets it after installing a software Vulkan driver), where they fail.
use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use multitag_gpu::{
    run_staged, EncoderRequest, EncoderStates, Gpu, GpuEncoder, GpuError, StagedError,
    StagedStates, StatesSource, Stored,
};
use multitag_model::{BertConfig, BertEncoder, Mode};

fn gpu() -> Option<Arc<Gpu>> {
    match Gpu::blocking() {
        Ok(gpu) => {
            eprintln!("adapter: {}", gpu.adapter());
            Some(Arc::new(gpu))
        }
        Err(e) if std::env::var("MULTITAG_REQUIRE_GPU").as_deref() != Ok("1") => {
            eprintln!("skipped: {e} (MULTITAG_REQUIRE_GPU=1 makes this a failure)");
            None
        }
        Err(e) => panic!("MULTITAG_REQUIRE_GPU=1 but {e}"),
    }
}

fn config(act: &str, embedding_layers: Option<usize>) -> BertConfig {
    BertConfig {
        vocab_size: 50,
        hidden_size: 32,
        num_hidden_layers: 3,
        num_attention_heads: 4,
        intermediate_size: 80,
        hidden_act: act.into(),
        hidden_dropout_prob: 0.1,
        attention_probs_dropout_prob: 0.1,
        max_position_embeddings: 64,
        type_vocab_size: 2,
        layer_norm_eps: 1e-12,
        model_type: Some("bert".into()),
        embedding_layers,
    }
}

/// A CPU encoder whose every weight (layer norms included) is random, and its variables.
fn random_encoder(config: &BertConfig) -> (BertEncoder, VarMap) {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let encoder = BertEncoder::load(config, vb).unwrap();
    for (i, var) in varmap.all_vars().iter().enumerate() {
        let noise = Tensor::randn(0f32, 0.5, var.shape(), &Device::Cpu).unwrap();
        // Layer-norm gains stay near 1, as trained ones are.
        let value = if i % 2 == 0 {
            noise
        } else {
            (noise + 0.5).unwrap()
        };
        var.set(&value).unwrap();
    }
    (encoder, varmap)
}

fn tensor_of(varmap: &VarMap) -> impl Fn(&str, &[usize]) -> candle_core::Result<Stored> + '_ {
    move |name, shape| Ok(Stored::Float(variable(varmap, name, shape)?))
}

fn variable(varmap: &VarMap, name: &str, shape: &[usize]) -> candle_core::Result<Tensor> {
    let data = varmap.data().lock().unwrap();
    let var = data
        .get(name)
        .ok_or_else(|| candle_core::Error::Msg(format!("missing `{name}`")))?;
    assert_eq!(var.dims(), shape, "{name}");
    Ok(var.as_tensor().clone())
}

/// Rows of 7, 3, 0 and 5 real tokens, padded to 7.
fn batch() -> (Vec<u32>, Vec<u32>, (usize, usize)) {
    let lengths = [7usize, 3, 0, 5];
    let seq = 7;
    let mut ids = Vec::new();
    let mut mask = Vec::new();
    for (b, &len) in lengths.iter().enumerate() {
        for t in 0..seq {
            let real = t < len;
            ids.push(if real {
                ((b * 11 + t * 7) % 50) as u32
            } else {
                0
            });
            mask.push(real as u32);
        }
    }
    (ids, mask, (lengths.len(), seq))
}

/// [`batch`] as the CPU encoder takes it: ids and mask tensors, and the mask and row count.
fn batch_tensors() -> (Tensor, Tensor, Vec<u32>, usize) {
    let (ids, mask, (batch, seq)) = batch();
    let ids_t = Tensor::from_vec(ids, (batch, seq), &Device::Cpu).unwrap();
    let mask_t = Tensor::from_vec(mask.clone(), (batch, seq), &Device::Cpu).unwrap();
    (ids_t, mask_t, mask, batch)
}

fn assert_close(gpu: &[f32], cpu: &Tensor, mask: &[u32], h: usize, what: &str) {
    let cpu = cpu.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(gpu.len(), cpu.len(), "{what}");
    let mut worst = 0f32;
    for (cell, &m) in mask.iter().enumerate() {
        if m == 0 {
            continue;
        }
        for c in 0..h {
            worst = worst.max((gpu[cell * h + c] - cpu[cell * h + c]).abs());
        }
    }
    eprintln!("{what}: largest difference {worst:e}");
    assert!(worst < 1e-4, "{what}: largest difference {worst}");
}

fn check(act: &str, embedding_layers: Option<usize>) {
    let Some(gpu) = gpu() else { return };
    let config = config(act, embedding_layers);
    let (cpu, varmap) = random_encoder(&config);
    let encoder = GpuEncoder::load(gpu, &config, tensor_of(&varmap)).unwrap();
    let (ids, mask, (batch, seq)) = batch();
    let ids_t = Tensor::from_vec(ids.clone(), (batch, seq), &Device::Cpu).unwrap();
    let mask_t = Tensor::from_vec(mask.clone(), (batch, seq), &Device::Cpu).unwrap();
    let (top, at_depth) = cpu
        .forward_with_embedding_states(&ids_t, &mask_t, &Mode::Infer)
        .unwrap();
    let depth = embedding_layers;
    let states = encoder
        .forward_blocking(&ids, &mask, (batch, seq), 3, depth)
        .unwrap();
    let h = config.hidden_size;
    assert_close(&states.top, &top, &mask, h, &format!("{act}: top"));
    if depth.is_some() {
        let gpu_depth = states.at_depth.expect("states at the embedding depth");
        assert_close(&gpu_depth, &at_depth, &mask, h, &format!("{act}: at depth"));
    }
    // The empty row and every pad come back as zeros.
    assert!(states.top[2 * seq * h..3 * seq * h]
        .iter()
        .all(|&v| v == 0.0));
    // A second, larger batch reuses and grows the buffers and gives the same first rows.
    let twice: Vec<u32> = ids.iter().chain(&ids).copied().collect();
    let mask_twice: Vec<u32> = mask.iter().chain(&mask).copied().collect();
    let again = encoder
        .forward_blocking(&twice, &mask_twice, (2 * batch, seq), 3, None)
        .unwrap();
    assert_close(
        &again.top[..batch * seq * h],
        &top,
        &mask,
        h,
        "second batch",
    );
}

#[test]
fn the_gpu_encoder_computes_the_cpu_encoders_states() {
    check("gelu", None);
}

#[test]
fn states_at_the_embedding_depth_and_other_activations_match() {
    check("gelu_new", Some(2));
    check("relu", Some(1));
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let Some(gpu) = gpu() else { return };
    let config = config("gelu", None);
    let (_, varmap) = random_encoder(&config);
    let encoder = GpuEncoder::load(gpu, &config, tensor_of(&varmap)).unwrap();
    let err = encoder
        .forward_blocking(&[1, 2, 3], &[1, 0, 1], (1, 3), 3, None)
        .unwrap_err();
    assert!(err.to_string().contains("not right padding"), "{err}");
    let err = encoder
        .forward_blocking(&[1, 99], &[1, 1], (1, 2), 3, None)
        .unwrap_err();
    assert!(err.to_string().contains("token id 99"), "{err}");
    let long = vec![1u32; 65];
    let err = encoder
        .forward_blocking(&long, &long, (1, 65), 3, None)
        .unwrap_err();
    assert!(err.to_string().contains("64 positions"), "{err}");
    let err = GpuEncoder::load(encoder.gpu_handle(), &config, |name, _| {
        Err(candle_core::Error::Msg(format!("missing `{name}`")))
    })
    .err()
    .expect("a missing weight is an error");
    assert!(err.to_string().contains("word_embeddings"), "{err}");
}

/// Set as an encoder's backend, the GPU gives that encoder's own results through its public
/// calls: the states at the top and at the embedding depth, and the pooled sentence embeddings
/// (which stop at that depth).
#[test]
fn an_encoder_on_the_gpu_backend_gives_its_cpu_results() {
    let Some(gpu) = gpu() else { return };
    let config = config("gelu", Some(2));
    let (mut cpu, varmap) = random_encoder(&config);
    let on_gpu = GpuEncoder::load(gpu, &config, tensor_of(&varmap)).unwrap();
    let (ids_t, mask_t, mask, batch) = batch_tensors();
    let run = |encoder: &BertEncoder| {
        let (top, depth) = encoder
            .forward_with_embedding_states(&ids_t, &mask_t, &Mode::Infer)
            .unwrap();
        let embedded = encoder.embed(&ids_t, &mask_t, &Mode::Infer).unwrap();
        (top, depth, embedded)
    };
    let want = run(&cpu);
    cpu.set_backend(Some(Arc::new(on_gpu)));
    assert!(cpu.backend().unwrap().name().starts_with("wgpu: "));
    let got = run(&cpu);
    let h = config.hidden_size;
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_close(&flat(&got.0), &want.0, &mask, h, "top");
    assert_close(&flat(&got.1), &want.1, &mask, h, "at depth");
    let pooled_rows = vec![1u32; batch];
    assert_close(&flat(&got.2), &want.2, &pooled_rows, h, "embeddings");
}

/// One sequence at a time of rising and falling lengths (the buffers grow, then are reused),
/// each as the CPU computes it.
#[test]
fn many_batches_of_changing_length() {
    let Some(gpu) = gpu() else { return };
    let config = config("gelu", None);
    let (cpu, varmap) = random_encoder(&config);
    let encoder = GpuEncoder::load(gpu, &config, tensor_of(&varmap)).unwrap();
    for len in (1..40).chain((1..20).rev()) {
        let ids: Vec<u32> = (0..len).map(|t| (t * 3 % 50) as u32).collect();
        let mask = vec![1u32; len];
        let states = encoder
            .forward_blocking(&ids, &mask, (1, len), 3, None)
            .unwrap();
        let ids_t = Tensor::from_vec(ids, (1, len), &Device::Cpu).unwrap();
        let mask_t = Tensor::from_vec(mask.clone(), (1, len), &Device::Cpu).unwrap();
        let want = cpu.forward(&ids_t, &mask_t, &Mode::Infer).unwrap();
        assert_close(
            &states.top,
            &want,
            &mask,
            config.hidden_size,
            "one sequence",
        );
    }
}

/// Staged as in the browser (the prediction asks, the GPU computes, the prediction runs again), a
/// prediction that calls its encoder twice (states, then pooled embeddings) gets the CPU's
/// results, in one more run per call; afterwards nothing stays staged.
#[test]
fn a_staged_prediction_gives_the_cpu_results() {
    let Some(gpu) = gpu() else { return };
    let config = config("gelu", Some(2));
    let (mut cpu, varmap) = random_encoder(&config);
    let on_gpu = GpuEncoder::load(gpu, &config, tensor_of(&varmap)).unwrap();
    let (ids_t, mask_t, mask, batch) = batch_tensors();
    let predict = |encoder: &BertEncoder| -> candle_core::Result<(Tensor, Tensor)> {
        let (top, _) = encoder.forward_with_embedding_states(&ids_t, &mask_t, &Mode::Infer)?;
        Ok((top, encoder.embed(&ids_t, &mask_t, &Mode::Infer)?))
    };
    let want = predict(&cpu).unwrap();
    let staged = Arc::new(StagedStates::new("test adapter", config.hidden_size));
    cpu.set_backend(Some(staged.clone()));
    let mut runs = 0;
    let got = pollster::block_on(run_staged(&staged, &on_gpu, || {
        runs += 1;
        predict(&cpu)
    }))
    .unwrap();
    assert_eq!(runs, 3, "one run more per encoder call");
    let h = config.hidden_size;
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_close(&flat(&got.0), &want.0, &mask, h, "staged top");
    assert_close(
        &flat(&got.1),
        &want.1,
        &vec![1; batch],
        h,
        "staged embeddings",
    );
    let err = predict(&cpu).unwrap_err().to_string();
    assert!(err.contains("not computed yet (test adapter)"), "{err}");
}

/// A device that fails every pass (lost, out of memory).
struct Broken;

impl StatesSource for Broken {
    async fn states(&self, _: &EncoderRequest) -> Result<EncoderStates, GpuError> {
        Err(GpuError::Execution("the device was lost".into()))
    }
}

/// The GPU's failure is returned as the GPU's, the prediction's own error as its own, and the
/// encoder taken off the backend gives its CPU results again: the browser's fallback for a batch.
/// (No adapter needed.)
#[test]
fn a_gpu_failure_comes_back_for_the_cpu_to_take_over() {
    let config = config("gelu", None);
    let (mut cpu, _varmap) = random_encoder(&config);
    let (ids_t, mask_t, mask, _) = batch_tensors();
    let want = cpu.forward(&ids_t, &mask_t, &Mode::Infer).unwrap();
    let staged = Arc::new(StagedStates::new("broken", config.hidden_size));
    cpu.set_backend(Some(staged.clone()));
    let failed = pollster::block_on(run_staged(&staged, &Broken, || {
        cpu.forward(&ids_t, &mask_t, &Mode::Infer)
    }));
    match failed {
        Err(StagedError::Gpu(e)) => assert!(e.to_string().contains("lost"), "{e}"),
        other => panic!("expected the GPU's failure, got {other:?}"),
    }
    let own = pollster::block_on(run_staged(&staged, &Broken, || Err::<(), _>("bad input")));
    assert!(matches!(own, Err(StagedError::Predict("bad input"))));
    cpu.set_backend(None);
    let again = cpu.forward(&ids_t, &mask_t, &Mode::Infer).unwrap();
    assert_close(
        &again.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        &want,
        &mask,
        config.hidden_size,
        "back on the CPU",
    );
}

/// Quantized matrices uploaded as their codes and read through the shaders' dequantization give
/// exactly what the same matrices dequantized to f32 at upload give: q8_0 and q4k dense layers (a
/// q4k export's choice by row length), a q5_0 word table. And they take far fewer bytes.
#[test]
fn quantized_matrices_read_as_codes_compute_as_their_f32_values() {
    let Some(gpu) = gpu() else { return };
    let config = BertConfig {
        hidden_size: 64,
        intermediate_size: 256,
        ..config("gelu", None)
    };
    let (_, varmap) = random_encoder(&config);
    let quantized = |name: &str, shape: &[usize]| -> candle_core::Result<Option<QTensor>> {
        let t = variable(&varmap, name, shape)?;
        let dtype = match (shape, name) {
            ([_], _) => return Ok(None),
            (_, "embeddings.word_embeddings.weight") => GgmlDType::Q5_0,
            ([_, cols], _) if cols % 256 == 0 => GgmlDType::Q4K,
            ([_, cols], _) if cols % 32 == 0 => GgmlDType::Q8_0,
            _ => return Ok(None),
        };
        QTensor::quantize(&t, dtype).map(Some)
    };
    let as_codes = GpuEncoder::load(gpu.clone(), &config, |name, shape| {
        Ok(match quantized(name, shape)? {
            Some(q) => Stored::Quantized(q),
            None => Stored::Float(variable(&varmap, name, shape)?),
        })
    })
    .unwrap();
    let as_f32 = GpuEncoder::load(gpu, &config, |name, shape| {
        Ok(Stored::Float(match quantized(name, shape)? {
            Some(q) => q.dequantize(&Device::Cpu)?,
            None => variable(&varmap, name, shape)?,
        }))
    })
    .unwrap();
    let (ids, mask, shape) = batch();
    let codes = as_codes
        .forward_blocking(&ids, &mask, shape, 3, None)
        .unwrap();
    let f32s = as_f32
        .forward_blocking(&ids, &mask, shape, 3, None)
        .unwrap();
    assert!(codes.top.iter().any(|&v| v != 0.0));
    assert_eq!(codes.top, f32s.top, "the same values, the same sums");
    eprintln!(
        "weights on the GPU: {} bytes as codes, {} as f32",
        as_codes.weight_bytes(),
        as_f32.weight_bytes()
    );
    assert!(as_codes.weight_bytes() * 3 < as_f32.weight_bytes());
}

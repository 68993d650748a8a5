//! Seeded parameter initialisation. candle's CPU random generator cannot be seeded, so new
//! parameters (a task head) are drawn here from a seeded generator: BERT's normal(0, 0.02) for
//! weights, zeros for biases. BINDER's log-scales (`*_logit_scale`) keep the constant the model
//! set (`ln(1 / 0.07)`).
use anyhow::Result;
use candle_core::Tensor;
use candle_nn::VarMap;
use rand::{rngs::StdRng, Rng, SeedableRng};

pub fn seeded_init(varmap: &VarMap, names: &[String], seed: u64) -> Result<()> {
    let data = varmap.data().lock().expect("variable map lock");
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5EED_1417);
    for name in names.iter().filter(|n| !n.ends_with("_logit_scale")) {
        let var = &data[name];
        let n = var.elem_count();
        let values: Vec<f32> = if name.ends_with(".bias") {
            vec![0.0; n]
        } else {
            (0..n).map(|_| 0.02 * standard_normal(&mut rng)).collect()
        };
        var.set(&Tensor::from_vec(values, var.shape(), var.device())?.to_dtype(var.dtype())?)?;
    }
    Ok(())
}

/// Box-Muller: one normal draw from two uniforms.
pub fn standard_normal(rng: &mut StdRng) -> f32 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

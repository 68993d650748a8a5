//! Training objectives: token cross-entropy for NER, the title/description triplet loss of
//! Siskind & Shah (both the paper's literal sigmoid objective and BPR's -ln sigmoid), and in-batch
//! InfoNCE, the contrastive alternative the paper's conclusion asks about. All are built from
//! differentiable primitive ops.
use candle_core::{DType, Result, Tensor, D};
use serde::{Deserialize, Serialize};

/// Mean cross-entropy over labeled positions. `targets` is `(batch, seq)` u32 (any value where
/// unlabeled), `weights` is `(batch, seq)` f32 with 1 where a position carries a label.
pub fn token_cross_entropy(logits: &Tensor, targets: &Tensor, weights: &Tensor) -> Result<Tensor> {
    let log_probs = candle_nn::ops::log_softmax(&logits.to_dtype(DType::F32)?, D::Minus1)?;
    let picked = log_probs
        .gather(&targets.unsqueeze(D::Minus1)?.contiguous()?, D::Minus1)?
        .squeeze(D::Minus1)?;
    let labeled = weights.sum_all()?.clamp(1.0, f64::MAX)?;
    (picked * weights)?.sum_all()?.neg()?.div(&labeled)
}

/// Row-wise cosine similarity of two `(batch, dim)` tensors.
pub fn cosine_rows(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let dot = (a * b)?.sum(D::Minus1)?;
    let norms = (a.sqr()?.sum(D::Minus1)?.sqrt()? * b.sqr()?.sum(D::Minus1)?.sqrt()?)?;
    dot.div(&norms.clamp(1e-8, f64::MAX)?)
}

/// Which form of the triplet objective on `d = cos(t, d+) - cos(t, d-)` to minimise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TripletForm {
    /// BPR: `-ln sigmoid(d)`; its gradient never vanishes on badly ordered triplets.
    Bpr,
    /// The paper as written: maximise `sigmoid(d) = e^d / (1 + e^d)`, i.e. minimise `1 - sigmoid(d)`.
    Sigmoid,
}

impl std::str::FromStr for TripletForm {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "bpr" => Ok(Self::Bpr),
            "sigmoid" => Ok(Self::Sigmoid),
            other => Err(format!("unknown triplet form `{other}` (bpr or sigmoid)")),
        }
    }
}

impl std::fmt::Display for TripletForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Bpr => "bpr",
            Self::Sigmoid => "sigmoid",
        })
    }
}

/// Mean triplet loss over the batch; inputs are `(batch, dim)` sentence embeddings.
pub fn triplet_loss(
    title: &Tensor,
    positive: &Tensor,
    negative: &Tensor,
    form: TripletForm,
) -> Result<Tensor> {
    let d = (cosine_rows(title, positive)? - cosine_rows(title, negative)?)?;
    // -ln sigmoid(d) = ln(1 + e^-d); d lies in [-2, 2], so the direct form cannot overflow.
    let per_item = match form {
        TripletForm::Bpr => (d.neg()?.exp()? + 1.0)?.log()?,
        TripletForm::Sigmoid => (1.0 - sigmoid(&d)?)?,
    };
    per_item.mean_all()
}

fn sigmoid(xs: &Tensor) -> Result<Tensor> {
    (xs.neg()?.exp()? + 1.0)?.recip()
}

/// In-batch InfoNCE from titles to descriptions: each title must pick its own description among
/// the batch's, with cosine similarities divided by `temperature`.
pub fn info_nce_loss(title: &Tensor, description: &Tensor, temperature: f64) -> Result<Tensor> {
    let n = title.dim(0)?;
    let t = normalize_rows(title)?;
    let d = normalize_rows(description)?;
    let logits = (t.matmul(&d.t()?)? / temperature)?;
    let targets = Tensor::arange(0u32, n as u32, title.device())?.unsqueeze(0)?;
    let weights = Tensor::ones((1, n), DType::F32, title.device())?;
    token_cross_entropy(&logits.unsqueeze(0)?, &targets, &weights)
}

pub fn normalize_rows(xs: &Tensor) -> Result<Tensor> {
    let norm = xs
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .clamp(1e-8, f64::MAX)?;
    xs.broadcast_div(&norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn scalar(t: &Tensor) -> f32 {
        t.to_scalar::<f32>().unwrap()
    }

    #[test]
    fn cross_entropy_matches_hand_computation_and_ignores_unlabeled() -> Result<()> {
        let dev = Device::Cpu;
        let logits = Tensor::new(&[[[0f32, 0.], [2., 0.], [5., -5.]]], &dev)?;
        let targets = Tensor::new(&[[0u32, 1, 0]], &dev)?;
        let weights = Tensor::new(&[[1f32, 1., 0.]], &dev)?;
        let loss = scalar(&token_cross_entropy(&logits, &targets, &weights)?);
        let expected = (2f32.ln() + (1.0 + 2f32.exp()).ln()) / 2.0;
        assert!((loss - expected).abs() < 1e-5, "{loss} vs {expected}");
        Ok(())
    }

    #[test]
    fn triplet_forms_follow_their_formulas() -> Result<()> {
        let dev = Device::Cpu;
        let t = Tensor::new(&[[1f32, 0.]], &dev)?;
        let pos = Tensor::new(&[[1f32, 0.]], &dev)?; // cos 1
        let neg = Tensor::new(&[[0f32, 3.]], &dev)?; // cos 0
        let bpr = scalar(&triplet_loss(&t, &pos, &neg, TripletForm::Bpr)?);
        let sig = scalar(&triplet_loss(&t, &pos, &neg, TripletForm::Sigmoid)?);
        let s = 1.0 / (1.0 + (-1f32).exp());
        assert!((bpr + s.ln()).abs() < 1e-5, "{bpr}");
        assert!((sig - (1.0 - s)).abs() < 1e-5, "{sig}");
        // Swapping positive and negative must make the loss larger.
        assert!(scalar(&triplet_loss(&t, &neg, &pos, TripletForm::Bpr)?) > bpr);
        Ok(())
    }

    #[test]
    fn info_nce_prefers_aligned_pairs() -> Result<()> {
        let dev = Device::Cpu;
        let t = Tensor::new(&[[1f32, 0.], [0., 1.]], &dev)?;
        let aligned = scalar(&info_nce_loss(&t, &t, 0.1)?);
        let swapped = scalar(&info_nce_loss(
            &t,
            &Tensor::new(&[[0f32, 1.], [1., 0.]], &dev)?,
            0.1,
        )?);
        assert!(aligned < 0.01 && swapped > 5.0, "{aligned} {swapped}");
        Ok(())
    }
}

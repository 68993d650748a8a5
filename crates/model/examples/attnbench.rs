use candle_core::{DType, Device, Tensor, Var};
use multitag_model::{DropoutRng, Mode};
use std::time::Instant;
fn main() -> candle_core::Result<()> {
    let dev = Device::Cpu;
    for (b, t) in [(16usize, 48usize), (16, 128)] {
        let heads = 12;
        let hd = 32;
        let h = heads * hd;
        let q = Var::randn(0f32, 1., (b * t, h), &dev)?;
        let k = Var::randn(0f32, 1., (b * t, h), &dev)?;
        let v = Var::randn(0f32, 1., (b * t, h), &dev)?;
        let mask = Tensor::zeros((b, 1, 1, t), DType::F32, &dev)?;
        let rng = DropoutRng::new(1);
        let mode = Mode::Train(&rng);
        let run = || -> candle_core::Result<(f64, f64)> {
            let t0 = Instant::now();
            let split = |x: &Tensor| x.reshape((b, t, heads, hd))?.transpose(1, 2)?.contiguous();
            let (qq, kk, vv) = (
                split(q.as_tensor())?,
                split(k.as_tensor())?,
                split(v.as_tensor())?,
            );
            let scores = (qq.matmul(&kk.t()?.contiguous()?)? * 0.17)?.broadcast_add(&mask)?;
            let probs = mode.softmax_last_dim(&scores)?;
            let probs = mode.dropout(&probs, 0.1)?;
            let ctx = probs.matmul(&vv)?.transpose(1, 2)?.reshape((b * t, h))?;
            let loss = ctx.sqr()?.sum_all()?;
            let f = t0.elapsed().as_secs_f64();
            let t1 = Instant::now();
            let _g = loss.backward()?;
            Ok((f, t1.elapsed().as_secs_f64()))
        };
        for _ in 0..3 {
            run()?;
        }
        let mut fs = 0.;
        let mut bs = 0.;
        let n = 10;
        for _ in 0..n {
            let (f, bw) = run()?;
            fs += f;
            bs += bw;
        }
        println!(
            "{b}x{t}: attention fwd {:.1} ms bwd {:.1} ms per layer; x6 layers = {:.0} ms",
            fs / n as f64 * 1e3,
            bs / n as f64 * 1e3,
            (fs + bs) / n as f64 * 6e3
        );
    }
    Ok(())
}

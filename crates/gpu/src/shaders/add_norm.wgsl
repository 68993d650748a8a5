// (reduce_sum and THREADS come from row_reduce.wgsl, prepended when the pipeline is built.)
// out = LayerNorm(x + residual) row by row (gamma, beta; eps): a workgroup per row. Mean first,
// then the variance about it (two passes, as candle's CPU layer norm).
struct Params {
    rows: u32,
    width: u32,
    eps: f32,
    rows_per_z: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> residual: array<f32>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
@group(0) @binding(4) var<storage, read> beta: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = wid.z * p.rows_per_z + wid.x;
    if (row >= p.rows) {
        return;
    }
    let t = lid.x;
    let base = row * p.width;
    var sum = 0.0;
    for (var c = t; c < p.width; c += THREADS) {
        sum += x[base + c] + residual[base + c];
    }
    let mean = reduce_sum(t, sum) / f32(p.width);
    var sq = 0.0;
    for (var c = t; c < p.width; c += THREADS) {
        let d = x[base + c] + residual[base + c] - mean;
        sq = fma(d, d, sq);
    }
    let inv = inverseSqrt(reduce_sum(t, sq) / f32(p.width) + p.eps);
    for (var c = t; c < p.width; c += THREADS) {
        let d = x[base + c] + residual[base + c] - mean;
        out[base + c] = d * inv * gamma[c] + beta[c];
    }
}

// (reduce_sum and THREADS come from row_reduce.wgsl, and weight(i), value i of the word table,
// from weights_f32.wgsl or weights_codes.wgsl with the table's binding (2), prepended when the
// pipeline is built.)
// The embeddings of packed rows: LayerNorm(word[id] + position_and_type[position]), where
// position_and_type is the position table with the token-type-0 row already added (the order
// candle's encoder adds them in). tokens[2 r] and tokens[2 r + 1] are row r's id and position.
struct Params {
    rows: u32,
    width: u32,
    eps: f32,
    rows_per_z: u32,
    // Bits per code of a quantized word table (weights_codes.wgsl).
    bits: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> tokens: array<u32>;
@group(0) @binding(3) var<storage, read> position_and_type: array<f32>;
@group(0) @binding(4) var<storage, read> gamma: array<f32>;
@group(0) @binding(5) var<storage, read> beta: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = wid.z * p.rows_per_z + wid.x;
    if (row >= p.rows) {
        return;
    }
    let t = lid.x;
    let w0 = tokens[2u * row] * p.width;
    let p0 = tokens[2u * row + 1u] * p.width;
    var sum = 0.0;
    for (var c = t; c < p.width; c += THREADS) {
        sum += weight(w0 + c) + position_and_type[p0 + c];
    }
    let mean = reduce_sum(t, sum) / f32(p.width);
    var sq = 0.0;
    for (var c = t; c < p.width; c += THREADS) {
        let d = weight(w0 + c) + position_and_type[p0 + c] - mean;
        sq = fma(d, d, sq);
    }
    let inv = inverseSqrt(reduce_sum(t, sq) / f32(p.width) + p.eps);
    for (var c = t; c < p.width; c += THREADS) {
        let d = weight(w0 + c) + position_and_type[p0 + c] - mean;
        out[row * p.width + c] = d * inv * gamma[c] + beta[c];
    }
}


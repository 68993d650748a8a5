// (reduce_sum, reduce_max and THREADS come from row_reduce.wgsl, prepended when the pipeline is
// built.)
// Scaled dot-product attention of packed rows (real tokens only, each sequence's rows
// contiguous): a workgroup per (row, head). qkv holds each row's query, key and value side by
// side (3 * hidden); seg[2 r] and seg[2 r + 1] are the first row and the length of row r's
// sequence, whose rows are all its keys (no mask: pads were never packed).
struct Params {
    rows: u32,
    heads: u32,
    head_dim: u32,
    hidden: u32,
    scale: f32,
    rows_per_z: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> seg: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// The longest sequence (BERT's 512 positions).
var<workgroup> scores: array<f32, 512>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = wid.z * p.rows_per_z + wid.x;
    if (row >= p.rows) {
        return;
    }
    let head = wid.y;
    let t = lid.x;
    let stride = 3u * p.hidden;
    let first = seg[2u * row];
    let len = min(seg[2u * row + 1u], 512u);
    let q = row * stride + head * p.head_dim;
    var local_max = -3.402823e38;
    for (var j = t; j < len; j += THREADS) {
        let k = (first + j) * stride + p.hidden + head * p.head_dim;
        var s = 0.0;
        for (var d = 0u; d < p.head_dim; d++) {
            s = fma(qkv[q + d], qkv[k + d], s);
        }
        s = s * p.scale;
        scores[j] = s;
        local_max = max(local_max, s);
    }
    let top = reduce_max(t, local_max);
    var local_sum = 0.0;
    for (var j = t; j < len; j += THREADS) {
        let e = exp(scores[j] - top);
        scores[j] = e;
        local_sum += e;
    }
    let total = reduce_sum(t, local_sum);
    for (var d = t; d < p.head_dim; d += THREADS) {
        let v = first * stride + 2u * p.hidden + head * p.head_dim + d;
        var acc = 0.0;
        for (var j = 0u; j < len; j++) {
            acc = fma(scores[j], qkv[v + j * stride], acc);
        }
        out[row * p.hidden + head * p.head_dim + d] = acc / total;
    }
}

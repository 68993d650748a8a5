// y = act(x · wᵀ + b): x (m, k) row-major, w (n, k) row-major (a torch Linear's weight), b (n).
// w is read through weight(i) (value i of w, row-major), which weights_f32.wgsl or
// weights_codes.wgsl, prepended when the pipeline is built, defines with w's binding (2).
// A workgroup computes a 64 x 64 tile of y with 16 x 16 threads, each a 4 x 4 block; k advances
// 16 at a time through workgroup memory. act: 0 none, 1 GELU (erf), 2 GELU (tanh), 3 ReLU.
struct Params {
    m: u32,
    n: u32,
    k: u32,
    act: u32,
    // Bits per code of a quantized w (weights_codes.wgsl).
    bits: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

const TILE: u32 = 64u;
const BK: u32 = 16u;

// [kk * TILE + r]: the tile's rows of x (and of w) for each of the BK steps of k.
var<workgroup> xs: array<f32, 1024>;
var<workgroup> ws: array<f32, 1024>;

// erf by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7): WGSL has no erf.
fn erf(v: f32) -> f32 {
    let s = sign(v);
    let a = abs(v);
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    return s * (1.0 - poly * exp(-a * a));
}

fn activate(v: f32) -> f32 {
    switch p.act {
        case 1u: {
            return 0.5 * v * (1.0 + erf(v * 0.70710678118654752));
        }
        case 2u: {
            return 0.5 * v * (1.0 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
        }
        case 3u: {
            return max(v, 0.0);
        }
        default: {
            return v;
        }
    }
}

@compute @workgroup_size(16, 16)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    var acc: array<f32, 16>;
    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        // 64 rows x 16 columns of k from each side, 4 values a thread; neighbouring threads read
        // neighbouring k.
        for (var i = 0u; i < 4u; i++) {
            let e = li + i * 256u;
            let r = e / BK;
            let kk = e % BK;
            let gk = k0 + kk;
            var xv = 0.0;
            if (row0 + r < p.m && gk < p.k) {
                xv = x[(row0 + r) * p.k + gk];
            }
            xs[kk * TILE + r] = xv;
            var wv = 0.0;
            if (col0 + r < p.n && gk < p.k) {
                wv = weight((col0 + r) * p.k + gk);
            }
            ws[kk * TILE + r] = wv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            var a: array<f32, 4>;
            var c: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                a[i] = xs[kk * TILE + lid.y * 4u + i];
                c[i] = ws[kk * TILE + lid.x * 4u + i];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i * 4u + j] = fma(a[i], c[j], acc[i * 4u + j]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let r = row0 + lid.y * 4u + i;
        for (var j = 0u; j < 4u; j++) {
            let c = col0 + lid.x * 4u + j;
            if (r < p.m && c < p.n) {
                y[r * p.n + c] = activate(acc[i * 4u + j] + b[c]);
            }
        }
    }
}

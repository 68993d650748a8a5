// A quantized weight matrix, dequantized as it is read (src/codes.rs): codes of p.bits bits (4 or
// 8), 32 / p.bits to a word from the lowest bits, at binding 2; a (scale, offset) pair per run of
// 32 values at binding FACTORS (the kernel's last). Value i = scale * code - offset.
@group(0) @binding(2) var<storage, read> codes: array<u32>;
@group(0) @binding(FACTORS) var<storage, read> factors: array<vec2<f32>>;

fn weight(i: u32) -> f32 {
    let per_word = 32u / p.bits;
    let code = (codes[i / per_word] >> ((i % per_word) * p.bits)) & ((1u << p.bits) - 1u);
    let f = factors[i / 32u];
    return f.x * f32(code) - f.y;
}

// A weight matrix as f32 values at binding 2.
@group(0) @binding(2) var<storage, read> w: array<f32>;

fn weight(i: u32) -> f32 {
    return w[i];
}

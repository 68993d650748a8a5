// Shared by the kernels that run a workgroup of 64 threads per row: a sum or a maximum over the
// workgroup's values (one a thread), returned to every thread.
const THREADS: u32 = 64u;
var<workgroup> red: array<f32, 64>;

fn reduce(t: u32, v: f32, take_max: bool) -> f32 {
    red[t] = v;
    workgroupBarrier();
    for (var s = THREADS / 2u; s > 0u; s = s / 2u) {
        if (t < s) {
            red[t] = select(red[t] + red[t + s], max(red[t], red[t + s]), take_max);
        }
        workgroupBarrier();
    }
    let total = red[0];
    workgroupBarrier();
    return total;
}

fn reduce_sum(t: u32, v: f32) -> f32 {
    return reduce(t, v, false);
}

fn reduce_max(t: u32, v: f32) -> f32 {
    return reduce(t, v, true);
}

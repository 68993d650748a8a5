// Training kernels for CUDA: f32, contiguous, row-major. Row kernels give each row to one warp.
//
// Dropout masks come from the same counter-based splitmix64 streams as the CPU kernels
// (`DropoutRng` in layers.rs): element j of stream `index` is a 16-bit slice of the (j/4)-th draw,
// so a kernel can compute any element directly, the backward pass redraws the mask instead of
// keeping it, and CPU and CUDA kernels draw identical masks for one seed. `threshold == 0` means
// no dropout.
#include <stdint.h>

#define GOLDEN 0x9E3779B97F4A7C15ull
#define WARP 32
#define ROWS_PER_BLOCK 8

__device__ __forceinline__ uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The starting state of stream `index` (`DropoutRng::stream`).
__device__ __forceinline__ uint64_t stream_state(uint64_t seed, uint64_t index) {
  return mix64(seed ^ mix64(index)) ^ GOLDEN;
}

// Element j of the scaled keep-mask of a stream starting at `state`.
__device__ __forceinline__ float keep_value(uint64_t state, uint32_t j, uint32_t threshold,
                                            float keep) {
  if (threshold == 0) return 1.0f;
  uint64_t r = mix64(state + (uint64_t)(j / 4 + 1) * GOLDEN);
  uint32_t draw = (uint32_t)((r >> (16 * (j % 4))) & 0xFFFFu);
  return draw < threshold ? 0.0f : keep;
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = WARP / 2; offset > 0; offset >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
  for (int offset = WARP / 2; offset > 0; offset >>= 1)
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// The warp's row, or -1 past the end. Blocks are ROWS_PER_BLOCK warps.
__device__ __forceinline__ long long warp_row(long long rows) {
  long long row = (long long)blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / WARP;
  return row < rows ? row : -1;
}

struct RowStats {
  float mean, rstd;
};

// Row `row` of y * keep + residual (residual may be null) into `into` (the warp's lanes each write
// their own columns and read back only those), and its mean and 1/sqrt(variance + eps).
__device__ RowStats sum_row(const float* y, const float* residual, float* into, long long row,
                            int d, float eps, uint64_t state, uint32_t threshold, float keep) {
  int lane = threadIdx.x % WARP;
  float sum = 0.0f;
  for (int j = lane; j < d; j += WARP) {
    float s = y[row * d + j] * keep_value(state, j, threshold, keep);
    if (residual) s += residual[row * d + j];
    into[j] = s;
    sum += s;
  }
  float mean = warp_sum(sum) / d;
  float var = 0.0f;
  for (int j = lane; j < d; j += WARP) var += (into[j] - mean) * (into[j] - mean);
  return {mean, rsqrtf(warp_sum(var) / d + eps)};
}

// out = layer_norm(y * keep + residual) with weight w and bias b, rows of d. `residual` may be
// null (a plain layer norm of y). The output row holds the sum until it is normalised.
extern "C" __global__ void residual_layer_norm_fwd(const float* y, const float* residual,
                                                   const float* w, const float* b, float* out,
                                                   long long rows, int d, float eps, uint64_t seed,
                                                   uint32_t threshold, float keep) {
  long long row = warp_row(rows);
  if (row < 0) return;
  int lane = threadIdx.x % WARP;
  float* o = out + row * d;
  RowStats stats =
      sum_row(y, residual, o, row, d, eps, stream_state(seed, (uint64_t)row), threshold, keep);
  for (int j = lane; j < d; j += WARP) o[j] = (o[j] - stats.mean) * stats.rstd * w[j] + b[j];
}

// The backward pass of residual_layer_norm_fwd over rows: the gradient of the normalised sum
// (grad_sum, which is also the residual's), of y when dropout applies (grad_y, else unused), and
// x̂ for the column sums that give the weight's and bias's gradients.
// With gy = g w: d(sum) = rstd (gy - mean(gy) - x̂ mean(gy x̂)).
extern "C" __global__ void residual_layer_norm_bwd(const float* y, const float* residual,
                                                   const float* w, const float* g, float* grad_sum,
                                                   float* grad_y, float* xhat, long long rows,
                                                   int d, float eps, uint64_t seed,
                                                   uint32_t threshold, float keep) {
  long long row = warp_row(rows);
  if (row < 0) return;
  int lane = threadIdx.x % WARP;
  const float* gr = g + row * d;
  float* xh = xhat + row * d;
  uint64_t state = stream_state(seed, (uint64_t)row);
  RowStats stats = sum_row(y, residual, xh, row, d, eps, state, threshold, keep);
  float rstd = stats.rstd;
  float sum_gy = 0.0f, sum_gy_xhat = 0.0f;
  for (int j = lane; j < d; j += WARP) {
    float x = (xh[j] - stats.mean) * rstd;
    xh[j] = x;
    float gy = gr[j] * w[j];
    sum_gy += gy;
    sum_gy_xhat += gy * x;
  }
  float mean_gy = warp_sum(sum_gy) / d;
  float mean_gy_xhat = warp_sum(sum_gy_xhat) / d;
  for (int j = lane; j < d; j += WARP) {
    float gs = rstd * (gr[j] * w[j] - mean_gy - xh[j] * mean_gy_xhat);
    grad_sum[row * d + j] = gs;
    if (threshold != 0) grad_y[row * d + j] = gs * keep_value(state, j, threshold, keep);
  }
}

#define COLUMN_ROWS 256

// Column sums over rows of d, added into `out` (zeroed by the caller): with `xhat`, out[0..d] gets
// Σ g x̂ and out[d..2d] Σ g (a layer norm's weight and bias gradients); without, out[0..d] gets
// Σ g (a bias's gradient). Blocks are 32 columns by 8 threads, each block over COLUMN_ROWS rows,
// so the reads of a warp are consecutive columns of one row.
extern "C" __global__ void column_sums(const float* g, const float* xhat, float* out,
                                       long long rows, int d) {
  __shared__ float dots[8][WARP + 1];
  __shared__ float sums[8][WARP + 1];
  int column = blockIdx.x * WARP + threadIdx.x;
  long long first = (long long)blockIdx.y * COLUMN_ROWS;
  long long last = first + COLUMN_ROWS < rows ? first + COLUMN_ROWS : rows;
  float dot = 0.0f, sum = 0.0f;
  if (column < d) {
    for (long long r = first + threadIdx.y; r < last; r += blockDim.y) {
      float v = g[r * d + column];
      sum += v;
      if (xhat) dot += v * xhat[r * d + column];
    }
  }
  dots[threadIdx.y][threadIdx.x] = dot;
  sums[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y != 0 || column >= d) return;
  for (int k = 1; k < blockDim.y; k++) {
    dot += dots[k][threadIdx.x];
    sum += sums[k][threadIdx.x];
  }
  if (xhat) {
    atomicAdd(out + column, dot);
    atomicAdd(out + d + column, sum);
  } else {
    atomicAdd(out + column, sum);
  }
}

// The largest of a row's masked, scaled scores, and the sum of their exponentials less it.
__device__ float row_max(const float* x, const float* m, int keys, float scale) {
  float max = -INFINITY;
  for (int j = threadIdx.x % WARP; j < keys; j += WARP) max = fmaxf(max, x[j] * scale + m[j]);
  return warp_max(max);
}

__device__ float row_exp_sum(const float* x, const float* m, int keys, float scale, float max) {
  float sum = 0.0f;
  for (int j = threadIdx.x % WARP; j < keys; j += WARP) sum += __expf(x[j] * scale + m[j] - max);
  return warp_sum(sum);
}

// Attention weights from raw scores, rows of `keys`: softmax(scores * scale + mask) times the
// dropout keep-mask of the row. `mask` is additive, one row of `keys` per batch item, shared by
// the `rows_per_item` score rows (heads x queries) of that item.
extern "C" __global__ void attention_probs_fwd(const float* scores, const float* mask, float* out,
                                               long long rows, int keys, long long rows_per_item,
                                               float scale, uint64_t seed, uint32_t threshold,
                                               float keep) {
  long long row = warp_row(rows);
  if (row < 0) return;
  int lane = threadIdx.x % WARP;
  const float* x = scores + row * keys;
  const float* m = mask + (row / rows_per_item) * keys;
  float max = row_max(x, m, keys, scale);
  float inv = 1.0f / row_exp_sum(x, m, keys, scale, max);
  uint64_t state = stream_state(seed, (uint64_t)row);
  for (int j = lane; j < keys; j += WARP) {
    float p = __expf(x[j] * scale + m[j] - max) * inv;
    out[row * keys + j] = p * keep_value(state, j, threshold, keep);
  }
}

// The scores' gradient given the weights' (after dropout): the softmax is recomputed from the
// scores and the mask redrawn. With p the softmax and gp = grad * keep,
// d(scores) = scale p (gp - Σ gp p).
extern "C" __global__ void attention_probs_bwd(const float* scores, const float* mask,
                                               const float* grad, float* grad_scores,
                                               long long rows, int keys, long long rows_per_item,
                                               float scale, uint64_t seed, uint32_t threshold,
                                               float keep) {
  long long row = warp_row(rows);
  if (row < 0) return;
  int lane = threadIdx.x % WARP;
  const float* x = scores + row * keys;
  const float* m = mask + (row / rows_per_item) * keys;
  const float* gr = grad + row * keys;
  float max = row_max(x, m, keys, scale);
  float inv = 1.0f / row_exp_sum(x, m, keys, scale, max);
  uint64_t state = stream_state(seed, (uint64_t)row);
  float dot = 0.0f;
  for (int j = lane; j < keys; j += WARP) {
    float p = __expf(x[j] * scale + m[j] - max) * inv;
    dot += gr[j] * keep_value(state, j, threshold, keep) * p;
  }
  dot = warp_sum(dot);
  for (int j = lane; j < keys; j += WARP) {
    float p = __expf(x[j] * scale + m[j] - max) * inv;
    float gp = gr[j] * keep_value(state, j, threshold, keep);
    grad_scores[row * keys + j] = scale * p * (gp - dot);
  }
}

// out = x + b, b broadcast over rows of d.
extern "C" __global__ void add_bias(const float* x, const float* b, float* out, long long n,
                                    int d) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x)
    out[i] = x[i] + b[i % d];
}

// Rows gathered by index, out[t] = table[ids[t]] for rows of h (embedding lookups, token
// packing), and the backward pass, which adds each output row's gradient into its id's row of the
// (zeroed) table gradient. Ids past the table (`vocab` rows) read zeros and add nothing: token ids
// are checked against the embedding table when a model loads, and packing indices are built
// within the grid.
extern "C" __global__ void gather_rows_fwd(const float* table, const uint32_t* ids, float* out,
                                           long long n, int h, uint32_t vocab) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x) {
    uint32_t id = ids[i / h];
    out[i] = id < vocab ? table[(long long)id * h + i % h] : 0.0f;
  }
}

extern "C" __global__ void gather_rows_bwd(const float* grad, const uint32_t* ids,
                                           float* table_grad, long long n, int h, uint32_t vocab) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x) {
    uint32_t id = ids[i / h];
    if (id < vocab) atomicAdd(table_grad + (long long)id * h + i % h, grad[i]);
  }
}

// x Φ(x) and its gradient, elementwise.
extern "C" __global__ void gelu_erf_fwd(const float* x, float* out, long long n) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x) {
    float v = x[i];
    out[i] = 0.5f * v * (1.0f + erff(v * 0.70710678f));
  }
}

extern "C" __global__ void gelu_erf_bwd(const float* x, const float* g, float* out, long long n) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x) {
    float v = x[i];
    float cdf = 0.5f * (1.0f + erff(v * 0.70710678f));
    out[i] = g[i] * (cdf + v * 0.39894228f * __expf(-0.5f * v * v));
  }
}

// AdamW's two steps in place, as the CPU ops in the trainer's optim.rs: the moment
// m = beta m + (1 - beta) (scale g), squared with `square`; then the parameter
// p = p decay - lr (m / bias1) / (sqrt(v / bias2) + eps).
extern "C" __global__ void adamw_moment(float* m, const float* g, long long n, float beta,
                                        float scale, int square) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x) {
    float v = g[i] * scale;
    m[i] = m[i] * beta + (square ? v * v : v) * (1.0f - beta);
  }
}

extern "C" __global__ void adamw_update(float* p, const float* m, const float* v, long long n,
                                        float decay, float lr, float bias1, float bias2,
                                        float eps) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x) {
    float update = (m[i] / bias1) / (sqrtf(v[i] / bias2) + eps);
    p[i] = p[i] * decay - update * lr;
  }
}

// The CUDA built-ins kernels.cu uses, emulated on the host so that its kernels' arithmetic can be
// tested where there is no GPU: one std::thread per CUDA thread, one block at a time, warp
// shuffles through a per-warp barrier, __syncthreads through a per-block one, float atomics under
// a mutex. What this cannot check is the launch from Rust (arguments, grid) and the hardware.
#include <barrier>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
};
thread_local dim3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

#define __global__
#define __device__
#define __forceinline__ inline
// Blocks run one at a time, so one static array serves every block.
#define __shared__ static

namespace emulated {
constexpr int MAX_WARPS = 32;
std::unique_ptr<std::barrier<>> warp_barriers[MAX_WARPS];
std::unique_ptr<std::barrier<>> block_barrier;
float shuffle[MAX_WARPS][32];
thread_local int warp, lane;
std::mutex atomics;

// Runs `kernel` over the grid, as `kernel<<<grid, block>>>()` would.
inline void launch(dim3 grid, dim3 block, const std::function<void()>& kernel) {
  gridDim = grid;
  blockDim = block;
  unsigned threads = block.x * block.y;
  unsigned warps = (threads + 31) / 32;
  for (unsigned by = 0; by < grid.y; by++) {
    for (unsigned bx = 0; bx < grid.x; bx++) {
      block_barrier = std::make_unique<std::barrier<>>(threads);
      for (unsigned w = 0; w < warps; w++)
        warp_barriers[w] = std::make_unique<std::barrier<>>(std::min(32u, threads - w * 32));
      std::vector<std::thread> running;
      for (unsigned ty = 0; ty < block.y; ty++) {
        for (unsigned tx = 0; tx < block.x; tx++) {
          running.emplace_back([=, &kernel] {
            blockIdx = {bx, by, 0};
            threadIdx = {tx, ty, 0};
            warp = (ty * block.x + tx) / 32;
            lane = (ty * block.x + tx) % 32;
            kernel();
          });
        }
      }
      for (auto& t : running) t.join();
    }
  }
}
}  // namespace emulated

inline float __shfl_xor_sync(unsigned, float v, int offset) {
  using namespace emulated;
  shuffle[warp][lane] = v;
  warp_barriers[warp]->arrive_and_wait();
  float other = shuffle[warp][lane ^ offset];
  warp_barriers[warp]->arrive_and_wait();
  return other;
}
inline void __syncthreads() { emulated::block_barrier->arrive_and_wait(); }
inline float atomicAdd(float* at, float v) {
  std::lock_guard<std::mutex> guard(emulated::atomics);
  float old = *at;
  *at += v;
  return old;
}
inline float __expf(float x) { return expf(x); }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }

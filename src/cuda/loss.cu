// Softmax cross-entropy (mean over the batch, label smoothing), its gradient and top-k accuracy,
// with the CPU engine's formulas: loss_i = lse_i - (1 - eps) x_i[label] - eps/K sum_j x_ij;
// dx = dloss / N * (softmax(x) - target); an example counts for top-k when fewer than k other
// logits are >= its label's logit (a NaN label logit never counts). One warp per row. A label
// outside [0, K) is reported through the backend's report slot and its row is skipped.
#include "cuda/device_kernels.h"
#include "cuda/launch.cuh"

namespace myelin::cuda {

namespace {

constexpr int kReduceThreads = 1024;

__device__ bool valid_label(int32_t label, int64_t k, int64_t row, DeviceReport* report, int site) {
  if (label >= 0 && label < k) return true;
  if (atomicCAS(&report->flag, 0, 1) == 0) {
    report->site = site;
    report->value = label;
    report->index = row;
  }
  return false;
}

// log(sum_j exp(x_j)) of one row, by one warp.
__device__ float row_lse(const float* row, int64_t k) {
  int lane = threadIdx.x & 31;
  float mx = -INFINITY;
#pragma unroll 8
  for (int64_t j = lane; j < k; j += 32) mx = fmaxf(mx, row[j]);
  mx = warp_max(mx);
  float sum = 0.f;
#pragma unroll 8
  for (int64_t j = lane; j < k; j += 32) sum += expf(row[j] - mx);
  return mx + logf(warp_sum(sum));
}

// One block: warps take rows in turn; the mean is reduced in double, deterministically.
__global__ void xent_forward_kernel(const float* x, const int32_t* labels, int64_t n, int64_t k,
                                    float eps, float* loss, DeviceReport* report, int site) {
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
  double total = 0;
  for (int64_t i = warp; i < n; i += warps) {
    const float* row = x + i * k;
    int32_t label = labels[i];
    bool ok = valid_label(label, k, i, report, site);
    float lse = row_lse(row, k);
    float rs = 0.f;
#pragma unroll 8
    for (int64_t j = lane; j < k; j += 32) rs += row[j];
    rs = warp_sum(rs);
    if (ok)
      total +=
          static_cast<double>(lse) - (1.0 - eps) * row[label] - static_cast<double>(eps) / k * rs;
  }
  __shared__ double sums[32];
  if (lane == 0) sums[warp] = total;
  __syncthreads();
  if (threadIdx.x == 0) {
    double t = 0;
    for (int w = 0; w < warps; ++w) t += sums[w];
    loss[0] = n ? static_cast<float>(t / n) : 0.f;
  }
}

__global__ void xent_backward_kernel(const float* dloss, const float* x, const int32_t* labels,
                                     int64_t n, int64_t k, float eps, float* dx,
                                     DeviceReport* report, int site) {
  int64_t i = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  int lane = threadIdx.x & 31;
  if (i >= n) return;
  const float* row = x + i * k;
  float* out = dx + i * k;
  int32_t label = labels[i];
  bool ok = valid_label(label, k, i, report, site);
  float scale = dloss[0] / static_cast<float>(n);
  float lse = row_lse(row, k);
  float smooth = eps / static_cast<float>(k);
  for (int64_t j = lane; j < k; j += 32) {
    float target = smooth + (ok && j == label ? 1.f - eps : 0.f);
    out[j] = scale * (expf(row[j] - lse) - target);
  }
}

__global__ void top_k_kernel(const float* x, const int32_t* labels, int64_t n, int64_t k, int top,
                             float* out, DeviceReport* report, int site) {
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
  int hits = 0;
  for (int64_t i = warp; i < n; i += warps) {
    const float* row = x + i * k;
    int32_t label = labels[i];
    if (!valid_label(label, k, i, report, site)) continue;
    float mine = row[label];
    int above = 0;
#pragma unroll 8
    for (int64_t j = lane; j < k; j += 32) above += j != label && !(row[j] < mine);
    for (int o = 16; o > 0; o >>= 1) above += __shfl_xor_sync(0xffffffffu, above, o);
    hits += (above < top && !isnan(mine)) ? 1 : 0;
  }
  __shared__ int sums[32];
  if (lane == 0) sums[warp] = hits;
  __syncthreads();
  if (threadIdx.x == 0) {
    int64_t t = 0;
    for (int w = 0; w < warps; ++w) t += sums[w];
    out[0] = n ? static_cast<float>(static_cast<double>(t) / n) : 0.f;
  }
}

}  // namespace

void xent_forward(const float* logits, const int32_t* labels, int64_t n, int64_t k, float smoothing,
                  float* loss, DeviceReport* report, int site, cudaStream_t s) {
  xent_forward_kernel<<<1, kReduceThreads, 0, s>>>(logits, labels, n, k, smoothing, loss, report,
                                                   site);
  check_launch("xent_forward", "");
}

void xent_backward(const float* dloss, const float* logits, const int32_t* labels, int64_t n,
                   int64_t k, float smoothing, float* dx, DeviceReport* report, int site,
                   cudaStream_t s) {
  xent_backward_kernel<<<blocks_for_all(n * 32), kThreads, 0, s>>>(dloss, logits, labels, n, k,
                                                                   smoothing, dx, report, site);
  check_launch("xent_backward", "");
}

void top_k_accuracy(const float* logits, const int32_t* labels, int64_t n, int64_t k, int top,
                    float* out, DeviceReport* report, int site, cudaStream_t s) {
  top_k_kernel<<<1, kReduceThreads, 0, s>>>(logits, labels, n, k, top, out, report, site);
  check_launch("top_k_accuracy", "");
}

}  // namespace myelin::cuda

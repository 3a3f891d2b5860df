// Would batch norm's statistics pass read a convolution's output from L2, not device memory, if
// the convolution ran in batch chunks with the statistics of each chunk taken right after it?
// ResNet-50's convolutions in bf16 NHWC at batch 256 (cuDNN, the fastest algorithm cudnnFind
// reports for the chunk), each chunking of the batch timed as CUDA graphs:
//   conv      the convolution, chunk by chunk
//   stats     a per-channel sum and sum of squares over the whole output afterwards (one pass)
//   together  per chunk: the convolution, then the sums over its output
// "gain" is conv(whole batch) + stats - together: what chunking would save (positive: worth
// building). The backward table does the same for the data gradient, whose output batch norm's
// gradient then reduces together with the layer's input (sum dy, sum dy * x; x stands in for the
// batch norm's input, of the same size). L2 is flushed before every timed replay.
//
//   l2_chunk_probe [--iters 20]
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

void check(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return;
  std::fprintf(stderr, "l2_chunk_probe: %s: %s\n", what, cudaGetErrorString(e));
  std::exit(1);
}

void check(cudnnStatus_t s, const char* what) {
  if (s == CUDNN_STATUS_SUCCESS) return;
  std::fprintf(stderr, "l2_chunk_probe: %s: %s\n", what, cudnnGetErrorString(s));
  std::exit(1);
}

struct Layer {
  const char* name;
  int c, h, w, k, r, stride, pad;
  int oh() const { return (h + 2 * pad - r) / stride + 1; }
  int ow() const { return (w + 2 * pad - r) / stride + 1; }
};

constexpr int kBatch = 256;
constexpr int kThreads = 256;

__global__ void fill(__nv_bfloat16* p, size_t n) {
  for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < n;
       i += size_t{gridDim.x} * blockDim.x)
    p[i] = __float2bfloat16(static_cast<float>(i % 17) * 0.0625f - 0.5f);
}

// Per-channel sums of a = [rows, cols * 8] bf16 and of a * a, or of a * b where b is given (batch
// norm's gradient), 16 bytes a thread (cols divides the block), four rows in flight: each block
// reduces its rows in shared memory and writes its partial sums (the pass's traffic; combining the
// blocks' partials, at most a sixteenth of a, is left out).
__global__ void channel_sums(const uint4* a, const uint4* b, long rows, int cols, float* partial) {
  extern __shared__ float sums[];  // [2][cols * 8]
  constexpr int kUnroll = 4;       // loads in flight per thread
  const int col = threadIdx.x % cols;
  const long stride = long{gridDim.x} * (blockDim.x / cols);
  float s[8] = {}, q[8] = {};
  for (long r = blockIdx.x * long(blockDim.x / cols) + threadIdx.x / cols; r < rows;
       r += kUnroll * stride) {
    uint4 va[kUnroll], vb[kUnroll];
    for (int u = 0; u < kUnroll; ++u) {
      const long i = (r + u * stride) * cols + col;
      const bool in = r + u * stride < rows;
      va[u] = in ? a[i] : make_uint4(0, 0, 0, 0);
      vb[u] = !b ? va[u] : in ? b[i] : make_uint4(0, 0, 0, 0);
    }
    for (int u = 0; u < kUnroll; ++u) {
      const auto* ha = reinterpret_cast<const __nv_bfloat162*>(&va[u]);
      const auto* hb = reinterpret_cast<const __nv_bfloat162*>(&vb[u]);
      for (int k = 0; k < 4; ++k) {
        float2 f = __bfloat1622float2(ha[k]), g = __bfloat1622float2(hb[k]);
        s[2 * k] += f.x, s[2 * k + 1] += f.y;
        q[2 * k] += f.x * g.x, q[2 * k + 1] += f.y * g.y;
      }
    }
  }
  for (int i = threadIdx.x; i < 2 * cols * 8; i += blockDim.x) sums[i] = 0;
  __syncthreads();
  for (int k = 0; k < 8; ++k) {
    atomicAdd(&sums[col * 8 + k], s[k]);
    atomicAdd(&sums[cols * 8 + col * 8 + k], q[k]);
  }
  __syncthreads();
  for (int i = threadIdx.x; i < 2 * cols * 8; i += blockDim.x)
    partial[blockIdx.x * 2L * cols * 8 + i] = sums[i];
}

struct Probe {
  cudnnHandle_t dnn;
  cudaStream_t stream;
  int blocks;  // of channel_sums at most: eight per multiprocessor
  void* workspace;
  size_t workspace_bytes = size_t{1} << 30;
  float* partial;
  void* flush;  // written before each timed replay, to empty L2
  size_t flush_bytes = size_t{256} << 20;
  int iters = 20;
};

// The convolution of `chunk` images as cuDNN runs it: descriptors and the fastest algorithm.
struct ChunkConv {
  cudnnTensorDescriptor_t x, y;
  cudnnFilterDescriptor_t w;
  cudnnConvolutionDescriptor_t conv;
  cudnnConvolutionFwdAlgo_t forward;
  cudnnConvolutionBwdDataAlgo_t data_grad;
  size_t x_bytes, y_bytes;  // one chunk's
};

// The algorithm of the direction probed, found on x, w and y (backward: dx written over x, dy
// read from y).
ChunkConv make_conv(Probe& p, const Layer& l, int chunk, bool backward, void* x, void* w, void* y) {
  ChunkConv c{};
  check(cudnnCreateTensorDescriptor(&c.x), "x descriptor");
  check(cudnnCreateTensorDescriptor(&c.y), "y descriptor");
  check(cudnnCreateFilterDescriptor(&c.w), "w descriptor");
  check(cudnnCreateConvolutionDescriptor(&c.conv), "conv descriptor");
  check(
      cudnnSetTensor4dDescriptor(c.x, CUDNN_TENSOR_NHWC, CUDNN_DATA_BFLOAT16, chunk, l.c, l.h, l.w),
      "x shape");
  check(cudnnSetTensor4dDescriptor(c.y, CUDNN_TENSOR_NHWC, CUDNN_DATA_BFLOAT16, chunk, l.k, l.oh(),
                                   l.ow()),
        "y shape");
  check(cudnnSetFilter4dDescriptor(c.w, CUDNN_DATA_BFLOAT16, CUDNN_TENSOR_NHWC, l.k, l.c, l.r, l.r),
        "w shape");
  check(cudnnSetConvolution2dDescriptor(c.conv, l.pad, l.pad, l.stride, l.stride, 1, 1,
                                        CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
        "conv shape");
  check(cudnnSetConvolutionMathType(c.conv, CUDNN_TENSOR_OP_MATH), "math type");
  int found = 0;
  if (backward) {
    cudnnConvolutionBwdDataAlgoPerf_t perf[8];
    check(cudnnFindConvolutionBackwardDataAlgorithmEx(p.dnn, c.w, w, c.y, y, c.conv, c.x, x, 8,
                                                      &found, perf, p.workspace, p.workspace_bytes),
          "cudnnFind (data gradient)");
    c.data_grad = perf[0].algo;
  } else {
    cudnnConvolutionFwdAlgoPerf_t perf[8];
    check(cudnnFindConvolutionForwardAlgorithmEx(p.dnn, c.x, x, c.w, w, c.conv, c.y, y, 8, &found,
                                                 perf, p.workspace, p.workspace_bytes),
          "cudnnFind (forward)");
    c.forward = perf[0].algo;
  }
  c.x_bytes = size_t{2} * chunk * l.c * l.h * l.w;
  c.y_bytes = size_t{2} * chunk * l.k * l.oh() * l.ow();
  return c;
}

// Forward: y = conv(x). Backward: x = the data gradient of y (dx over x's buffer).
void run_conv(Probe& p, const ChunkConv& c, bool backward, char* x, const void* w, char* y) {
  const float one = 1, zero = 0;
  if (backward)
    check(cudnnConvolutionBackwardData(p.dnn, &one, c.w, w, c.y, y, c.conv, c.data_grad,
                                       p.workspace, p.workspace_bytes, &zero, c.x, x),
          "data gradient");
  else
    check(cudnnConvolutionForward(p.dnn, &one, c.x, x, c.w, w, c.conv, c.forward, p.workspace,
                                  p.workspace_bytes, &zero, c.y, y),
          "convolution");
}

// channel_sums over `bytes` of a (k channels), with b beside it where given.
void run_sums(Probe& p, const char* a, const char* b, size_t bytes, int k) {
  const int cols = k / 8;
  const long rows = static_cast<long>(bytes / (2 * size_t(k)));
  // Each thread takes 16 rows or more, so the blocks' partial sums stay small beside y.
  const long blocks = std::clamp(rows / (kThreads / cols * 16L), 1L, long{p.blocks});
  channel_sums<<<blocks, kThreads, 2 * cols * 8 * sizeof(float), p.stream>>>(
      reinterpret_cast<const uint4*>(a), reinterpret_cast<const uint4*>(b), rows, cols, p.partial);
}

// Milliseconds per replay of what `record` launches, captured as one CUDA graph.
template <class Record>
double time_graph(Probe& p, Record record) {
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  check(cudaStreamBeginCapture(p.stream, cudaStreamCaptureModeThreadLocal), "capture");
  record();
  check(cudaStreamEndCapture(p.stream, &graph), "end capture");
  check(cudaGraphInstantiate(&exec, graph, 0), "instantiate");
  cudaEvent_t a, b;
  check(cudaEventCreate(&a), "event");
  check(cudaEventCreate(&b), "event");
  check(cudaGraphLaunch(exec, p.stream), "warm-up");
  double total = 0;
  for (int i = 0; i < p.iters; ++i) {
    check(cudaMemsetAsync(p.flush, i & 0xff, p.flush_bytes, p.stream), "flush");
    check(cudaEventRecord(a, p.stream), "record");
    check(cudaGraphLaunch(exec, p.stream), "replay");
    check(cudaEventRecord(b, p.stream), "record");
    check(cudaEventSynchronize(b), "sync");
    float ms = 0;
    check(cudaEventElapsedTime(&ms, a, b), "elapsed");
    total += ms;
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  return total / p.iters;
}

// One table: the layer's convolution (forward) or data gradient (backward) in each chunking.
// bn_in: batch norm's input beside the data gradient (backward), of x's size.
void probe_direction(Probe& p, const Layer& l, bool backward, char* x, char* w, char* y,
                     const char* bn_in) {
  const size_t xb = size_t{2} * kBatch * l.c * l.h * l.w;
  const size_t yb = size_t{2} * kBatch * l.k * l.oh() * l.ow();
  // What the pass writes and batch norm then reads: y (k channels), or dx over x (c channels).
  char* out = backward ? x : y;
  const size_t out_bytes = backward ? xb : yb;
  const int channels = backward ? l.c : l.k;
  const char* beside = backward ? bn_in : nullptr;
  std::printf("%s %s:\n%6s %9s %10s %9s %9s %11s %8s\n", l.name,
              backward ? "data gradient, then sum dy and dy * x" : "forward, then sum y and y * y",
              "chunk", "out MB", "conv ms", "stats ms", "GB/s", "together ms", "gain ms");
  double whole_conv = 0, whole_stats = 0;
  for (int chunk : {256, 128, 64, 32, 16, 8}) {
    ChunkConv c = make_conv(p, l, chunk, backward, x, w, y);
    const int chunks = kBatch / chunk;
    const size_t out_chunk = backward ? c.x_bytes : c.y_bytes;
    double conv = time_graph(p, [&] {
      for (int i = 0; i < chunks; ++i)
        run_conv(p, c, backward, x + i * c.x_bytes, w, y + i * c.y_bytes);
    });
    double stats = time_graph(p, [&] { run_sums(p, out, beside, out_bytes, channels); });
    double together = time_graph(p, [&] {
      for (int i = 0; i < chunks; ++i) {
        run_conv(p, c, backward, x + i * c.x_bytes, w, y + i * c.y_bytes);
        run_sums(p, out + i * out_chunk, beside ? beside + i * out_chunk : nullptr, out_chunk,
                 channels);
      }
    });
    if (chunk == kBatch) whole_conv = conv, whole_stats = stats;
    std::printf("%6d %9.1f %10.3f %9.3f %9.0f %11.3f %8.3f\n", chunk, out_chunk / 1e6, conv, stats,
                out_bytes * (beside ? 2 : 1) / stats / 1e6, together,
                whole_conv + whole_stats - together);
    cudnnDestroyTensorDescriptor(c.x);
    cudnnDestroyTensorDescriptor(c.y);
    cudnnDestroyFilterDescriptor(c.w);
    cudnnDestroyConvolutionDescriptor(c.conv);
  }
}

void probe_layer(Probe& p, const Layer& l) {
  const size_t xb = size_t{2} * kBatch * l.c * l.h * l.w;
  const size_t yb = size_t{2} * kBatch * l.k * l.oh() * l.ow();
  const size_t wb = size_t{2} * l.k * l.c * l.r * l.r;
  char *x, *y, *w, *bn_in;
  check(cudaMalloc(&x, xb), "x");
  check(cudaMalloc(&bn_in, xb), "batch norm's input");
  check(cudaMalloc(&y, yb), "y");
  check(cudaMalloc(&w, wb), "w");
  fill<<<1024, kThreads, 0, p.stream>>>(reinterpret_cast<__nv_bfloat16*>(x), xb / 2);
  fill<<<1024, kThreads, 0, p.stream>>>(reinterpret_cast<__nv_bfloat16*>(y), yb / 2);
  fill<<<1024, kThreads, 0, p.stream>>>(reinterpret_cast<__nv_bfloat16*>(w), wb / 2);
  fill<<<1024, kThreads, 0, p.stream>>>(reinterpret_cast<__nv_bfloat16*>(bn_in), xb / 2);
  check(cudaStreamSynchronize(p.stream), "fill");
  std::printf("\n%s: %d -> %d channels, %dx%d, %dx%d stride %d; x %.1f MB, y %.1f MB at batch %d\n",
              l.name, l.c, l.k, l.h, l.w, l.r, l.r, l.stride, xb / 1e6, yb / 1e6, kBatch);
  probe_direction(p, l, false, x, w, y, nullptr);
  probe_direction(p, l, true, x, w, y, bn_in);
  cudaFree(bn_in);
  cudaFree(x);
  cudaFree(y);
  cudaFree(w);
}

}  // namespace

int main(int argc, char** argv) {
  Probe p{};
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--iters") == 0) p.iters = std::max(1, std::atoi(argv[i + 1]));
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, 0), "device");
  std::printf("%s: %d multiprocessors, L2 %.0f MB; cuDNN %zu\n", prop.name,
              prop.multiProcessorCount, prop.l2CacheSize / 1e6, cudnnGetVersion());
  p.blocks = 8 * prop.multiProcessorCount;
  check(cudaStreamCreate(&p.stream), "stream");
  check(cudnnCreate(&p.dnn), "cudnn");
  check(cudnnSetStream(p.dnn, p.stream), "cudnn stream");
  check(cudaMalloc(&p.workspace, p.workspace_bytes), "workspace");
  check(cudaMalloc(&p.flush, p.flush_bytes), "flush buffer");
  check(cudaMalloc(&p.partial, size_t{2} * 2048 * p.blocks * sizeof(float)), "partials");
  const Layer layers[] = {
      {"layer1 3x3", 64, 56, 56, 64, 3, 1, 1},
      {"layer1 1x1 expand", 64, 56, 56, 256, 1, 1, 0},
      {"layer2 3x3", 128, 28, 28, 128, 3, 1, 1},
      {"layer3 1x1 expand", 256, 14, 14, 1024, 1, 1, 0},
      {"layer4 1x1 expand", 512, 7, 7, 2048, 1, 1, 0},
  };
  for (const Layer& l : layers) probe_layer(p, l);
  return 0;
}

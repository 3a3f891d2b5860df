// im2col + SGEMM convolution kernels (conv_gemm.h). Per group g of a chunk of images b:
//   forward      y[b, g]   = W[g] . col(x[b, g])                    (og x K . K x P)
//   grad_input   dx[b, g]  = col2im(W[g]^T . dy[b, g])              (K x og . og x P)
//   grad_weight  dW[g]    += dy[b, g] . col(x[b, g])^T              (og x P . P x K)
// where a chunk's columns sit side by side (K x chunk*P), so one product covers the chunk.
// Each thread takes a contiguous slice of the batch; weight gradients go to per-thread partial
// sums in the workspace, added in a fixed order, so results do not depend on timing.
#include "cpu/conv_gemm.h"

#include <dnnl.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstring>

#include "core/error.h"
#include "cpu/cpu_backend.h"
#include "cpu/fuse.h"
#include "cpu/simd.h"
#include "cpu/small_gemm.h"
#include "ops/params.h"

namespace myelin::cpu {

namespace {

constexpr int64_t kAlignFloats = 16;          // 64 bytes
constexpr int64_t kChunkFloats = 128 * 1024;  // one thread's column matrix: 512 KiB
// Weight gradients of at most this many elements per group (LeNet's conv1: 20 x 25) go to
// small_gemm_nt, whose tiles suit a small output over a long reduction better than SGEMM's.
constexpr int64_t kSmallOutput = 4096;

int64_t align_up(int64_t n) {
  return (n + kAlignFloats - 1) / kAlignFloats * kAlignFloats;
}

// Row stride of a scratch matrix with `cols` columns: an odd number of cache lines, so the rows
// a product walks down fall in different L1 sets (LeNet's conv2 chunk, 1,024 floats, is exactly
// 4 KiB: without the padding every row of the chunk maps to the same set).
int64_t padded_ld(int64_t cols) {
  int64_t lines = (cols + kAlignFloats - 1) / kAlignFloats;
  return (lines % 2 == 0 ? lines + 1 : lines) * kAlignFloats;
}

// Row-major single-threaded (inside a parallel region) or threaded (outside) SGEMM:
// C[m, n] = op(A) op(B) + beta C. Returns false on failure (no exceptions inside OpenMP).
bool sgemm(char ta, char tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  return dnnl_sgemm(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc) == dnnl_success;
}

// The outputs [o0, o1) whose input position o * stride + off lies inside [0, size).
void valid_range(int64_t size, int64_t out, int64_t stride, int64_t off, int64_t& o0, int64_t& o1) {
  o0 = off >= 0 ? 0 : (-off + stride - 1) / stride;
  o1 = size - off > 0 ? (size - off + stride - 1) / stride : 0;
  o0 = std::min(o0, out);
  o1 = std::clamp(o1, o0, out);
}

// Tap (ky, kx) of one channel as seen from the output pixels: the valid rectangle of outputs
// [oy0, oy1) x [ox0, ox1) and the input offset of output (0, 0) (outside the input when padded).
struct Tap {
  int64_t oy0, oy1, ox0, ox1, origin;
  Tap(const ConvShape& s, int64_t ky, int64_t kx) {
    const int64_t off_y = ky * s.dil_h - s.ph, off_x = kx * s.dil_w - s.pw;
    valid_range(s.h, s.oh, s.sh, off_y, oy0, oy1);
    valid_range(s.w, s.ow, s.sw, off_x, ox0, ox1);
    origin = off_y * s.w + off_x;
  }
};

// One image's group of channels x[cg, h, w] as columns: row (c, ky, kx) of col holds, for every
// output pixel, the input it multiplies by that tap (0 in the padding). Rows are ld apart.
MYELIN_VECTOR_CLONES void im2col(const ConvShape& s, const float* x, float* col, int64_t ld) {
  for (int64_t ky = 0; ky < s.kh; ++ky)
    for (int64_t kx = 0; kx < s.kw; ++kx) {
      const Tap tap(s, ky, kx);
      for (int64_t c = 0; c < s.cg(); ++c) {
        float* row = col + ((c * s.kh + ky) * s.kw + kx) * ld;
        const float* xc = x + c * s.h * s.w + tap.origin;
        std::fill_n(row, tap.oy0 * s.ow, 0.0f);
        const bool inside = tap.ox0 == 0 && tap.ox1 == s.ow;
        for (int64_t oy = tap.oy0; oy < tap.oy1; ++oy) {
          float* r = row + oy * s.ow;
          const float* xr = xc + oy * s.sh * s.w;
          if (inside && s.sw == 1) {  // the common case: one short run (LeNet's conv2: 8 floats)
#pragma omp simd
            for (int64_t ox = 0; ox < s.ow; ++ox) r[ox] = xr[ox];
            continue;
          }
          std::fill_n(r, tap.ox0, 0.0f);
          if (s.sw == 1)
#pragma omp simd
            for (int64_t ox = tap.ox0; ox < tap.ox1; ++ox) r[ox] = xr[ox];
          else
            for (int64_t ox = tap.ox0; ox < tap.ox1; ++ox) r[ox] = xr[ox * s.sw];
          std::fill(r + tap.ox1, r + s.ow, 0.0f);
        }
        std::fill(row + tap.oy1 * s.ow, row + s.p(), 0.0f);
      }
    }
}

// The adjoint of im2col: adds every column entry back onto the input element it came from.
MYELIN_VECTOR_CLONES void col2im(const ConvShape& s, const float* col, int64_t ld, float* x) {
  for (int64_t ky = 0; ky < s.kh; ++ky)
    for (int64_t kx = 0; kx < s.kw; ++kx) {
      const Tap tap(s, ky, kx);
      for (int64_t c = 0; c < s.cg(); ++c) {
        const float* row = col + ((c * s.kh + ky) * s.kw + kx) * ld;
        float* xc = x + c * s.h * s.w + tap.origin;
        for (int64_t oy = tap.oy0; oy < tap.oy1; ++oy) {
          const float* r = row + oy * s.ow;
          float* xr = xc + oy * s.sh * s.w;
          if (s.sw == 1) {
#pragma omp simd
            for (int64_t ox = tap.ox0; ox < tap.ox1; ++ox) xr[ox] += r[ox];
          } else {
            for (int64_t ox = tap.ox0; ox < tap.ox1; ++ox) xr[ox * s.sw] += r[ox];
          }
        }
      }
    }
}

// Per-thread scratch, carved from the step workspace.
struct ThreadScratch {
  float* col;   // K x chunk*P
  float* rows;  // og x chunk*P: a chunk's outputs (forward) or output gradients (backward)
  float* dw;    // O x K partial weight gradient (grad_weight, threads after the first)
};

class GemmConv : public Kernel {
 public:
  GemmConv(const KernelSpec& s, ConvPass pass)
      : s_(conv_shape(s, pass)),
        pass_(pass),
        threads_(cpu_backend(s).threads()),
        post_(pass == ConvPass::forward ? s.node.attrs : Attrs{}) {
    const int64_t per_thread = (s_.n + threads_ - 1) / threads_;
    chunk_ = std::clamp<int64_t>(kChunkFloats / std::max<int64_t>(1, s_.k() * s_.p()), 1,
                                 std::max<int64_t>(1, per_thread));
    if (s_.pointwise()) chunk_ = 1;  // images are their own column matrices: no copies
    col_floats_ = s_.k() * padded_ld(chunk_ * s_.p());
    rows_floats_ = chunk_ > 1 ? s_.og() * padded_ld(chunk_ * s_.p()) : 0;
    dw_floats_ = pass_ == ConvPass::grad_weight ? align_up(s_.o * s_.k()) : 0;
    small_output_ = small_gemm_available() && s_.og() * s_.k() <= kSmallOutput;
  }

  size_t workspace_bytes() const override {
    return static_cast<size_t>(threads_) * (col_floats_ + rows_floats_ + dw_floats_) *
           sizeof(float);
  }

  void run(const std::vector<Tensor>& in, const std::vector<Tensor>& out,
           const StepContext& ctx) override {
    auto* ws = static_cast<float*>(ctx.workspace);
    std::atomic<bool> ok{true};
    if (s_.n < threads_) {  // too few images to share: one slice, threaded SGEMMs
      run_slice(in, out, 0, s_.n, scratch(ws, 0), out[0].f32(), ok);
    } else {
#pragma omp parallel num_threads(threads_)
      {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        const int64_t b0 = s_.n * t / nt, b1 = s_.n * (t + 1) / nt;
        ThreadScratch sc = scratch(ws, t);
        float* dw = pass_ == ConvPass::grad_weight && t > 0 ? sc.dw : out[0].f32();
        run_slice(in, out, b0, b1, sc, dw, ok);
        if (pass_ == ConvPass::grad_weight) {
#pragma omp barrier
          reduce_partials(ws, nt, out[0].f32());
        }
      }
    }
    if (!ok) throw DeviceError("oneDNN sgemm failed in the im2col convolution");
  }

 private:
  ThreadScratch scratch(float* ws, int t) const {
    float* base = ws + static_cast<int64_t>(t) * (col_floats_ + rows_floats_ + dw_floats_);
    return {base, base + col_floats_, base + col_floats_ + rows_floats_};
  }

  // Images [b0, b1) of the pass; dw receives this slice's weight gradient.
  void run_slice(const std::vector<Tensor>& in, const std::vector<Tensor>& out, int64_t b0,
                 int64_t b1, const ThreadScratch& sc, float* dw, std::atomic<bool>& ok) const {
    for (int64_t cb = b0; cb < b1; cb += chunk_) {
      const int64_t nb = std::min(chunk_, b1 - cb);
      for (int64_t g = 0; g < s_.groups; ++g) {
        bool good = true;
        if (pass_ == ConvPass::forward)
          good = forward(in[0].f32(), in[1].f32(), out[0].f32(), cb, nb, g, sc);
        else if (pass_ == ConvPass::grad_input)
          good = grad_input(in[0].f32(), in[1].f32(), out[0].f32(), cb, nb, g, sc);
        else
          good = grad_weight(in[0].f32(), in[1].f32(), dw, cb, nb, g, cb == b0, sc);
        if (!good) ok = false;
      }
      if (pass_ == ConvPass::forward && (s_.has_bias || post_.on))
        epilogue(s_.has_bias ? in[2].f32() : nullptr, out[0].f32() + cb * s_.o * s_.p(), nb);
    }
  }

  // Offset of image b, group g, channel 0 in a [n, channels, pixels] tensor.
  int64_t at(int64_t b, int64_t g, int64_t channels, int64_t group_channels, int64_t pixels) const {
    return (b * channels + g * group_channels) * pixels;
  }

  // A matrix in place or in the scratch: its first element and its row stride.
  struct View {
    const float* at;
    int64_t ld;
  };

  // The column matrix of images [cb, cb + nb), group g: the image itself when pointwise.
  View columns(const float* x, int64_t cb, int64_t nb, int64_t g, const ThreadScratch& sc) const {
    const int64_t hw = s_.h * s_.w;
    if (s_.pointwise() && nb == 1) return {x + at(cb, g, s_.c, s_.cg(), hw), s_.p()};
    const int64_t ld = padded_ld(nb * s_.p());
    for (int64_t b = 0; b < nb; ++b)
      im2col(s_, x + at(cb + b, g, s_.c, s_.cg(), hw), sc.col + b * s_.p(), ld);
    return {sc.col, ld};
  }

  // The output-side rows of images [cb, cb + nb), group g as one og x nb*P matrix: in place
  // for one image, else gathered into the scratch rows.
  View gather_rows(const float* y, int64_t cb, int64_t nb, int64_t g,
                   const ThreadScratch& sc) const {
    const int64_t p = s_.p();
    if (nb == 1) return {y + at(cb, g, s_.o, s_.og(), p), p};
    const int64_t ld = padded_ld(nb * p);
    for (int64_t b = 0; b < nb; ++b)
      for (int64_t o = 0; o < s_.og(); ++o)
        std::memcpy(sc.rows + o * ld + b * p, y + at(cb + b, g, s_.o, s_.og(), p) + o * p,
                    p * sizeof(float));
    return {sc.rows, ld};
  }

  bool forward(const float* x, const float* w, float* y, int64_t cb, int64_t nb, int64_t g,
               const ThreadScratch& sc) const {
    const int64_t p = s_.p(), og = s_.og(), k = s_.k();
    const View col = columns(x, cb, nb, g, sc);
    const float* wg = w + g * og * k;
    if (nb == 1)
      return sgemm('N', 'N', og, p, k, wg, k, col.at, col.ld, 0.0f, y + at(cb, g, s_.o, og, p), p);
    const int64_t ld = padded_ld(nb * p);
    if (!sgemm('N', 'N', og, nb * p, k, wg, k, col.at, col.ld, 0.0f, sc.rows, ld)) return false;
    for (int64_t b = 0; b < nb; ++b)
      for (int64_t o = 0; o < og; ++o)
        std::memcpy(y + at(cb + b, g, s_.o, og, p) + o * p, sc.rows + o * ld + b * p,
                    p * sizeof(float));
    return true;
  }

  bool grad_input(const float* dy, const float* w, float* dx, int64_t cb, int64_t nb, int64_t g,
                  const ThreadScratch& sc) const {
    const int64_t p = s_.p(), hw = s_.h * s_.w, og = s_.og(), k = s_.k();
    const View rows = gather_rows(dy, cb, nb, g, sc);
    const float* wg = w + g * og * k;
    if (s_.pointwise() && nb == 1)
      return sgemm('T', 'N', k, p, og, wg, k, rows.at, rows.ld, 0.0f,
                   dx + at(cb, g, s_.c, s_.cg(), hw), p);
    const int64_t ld = padded_ld(nb * p);
    if (!sgemm('T', 'N', k, nb * p, og, wg, k, rows.at, rows.ld, 0.0f, sc.col, ld)) return false;
    for (int64_t b = 0; b < nb; ++b) {
      float* dxb = dx + at(cb + b, g, s_.c, s_.cg(), hw);
      std::fill_n(dxb, s_.cg() * hw, 0.0f);
      col2im(s_, sc.col + b * p, ld, dxb);
    }
    return true;
  }

  bool grad_weight(const float* dy, const float* x, float* dw, int64_t cb, int64_t nb, int64_t g,
                   bool first, const ThreadScratch& sc) const {
    const int64_t len = nb * s_.p(), og = s_.og(), k = s_.k();
    const View rows = gather_rows(dy, cb, nb, g, sc);
    const View col = columns(x, cb, nb, g, sc);
    float* dwg = dw + g * og * k;
    const float beta = first ? 0.0f : 1.0f;
    if (small_output_) {
      small_gemm_nt(og, k, len, rows.at, rows.ld, col.at, col.ld, beta, dwg, k);
      return true;
    }
    return sgemm('N', 'T', og, k, len, rows.at, rows.ld, col.at, col.ld, beta, dwg, k);
  }

  // Adds threads 1..nt-1's partial weight gradients onto thread 0's, in thread order.
  void reduce_partials(float* ws, int nt, float* dw) const {
    const int64_t len = s_.o * s_.k();
#pragma omp for schedule(static)
    for (int64_t i = 0; i < len; ++i) {
      float acc = dw[i];
      for (int t = 1; t < nt; ++t) acc += scratch(ws, t).dw[i];
      dw[i] = acc;
    }
  }

  // Adds the bias (if any) and applies a fused ReLU (if any) to a chunk's outputs while they
  // are still in cache.
  void epilogue(const float* bias, float* y, int64_t nb) const {
    const int64_t p = s_.p();
    const PostRelu post = post_;
    for (int64_t b = 0; b < nb; ++b)
      for (int64_t o = 0; o < s_.o; ++o) {
        float* r = y + (b * s_.o + o) * p;
        const float v = bias ? bias[o] : 0.0f;
        if (!post.on) {
#pragma omp simd
          for (int64_t i = 0; i < p; ++i) r[i] += v;
          continue;
        }
#pragma omp simd
        for (int64_t i = 0; i < p; ++i) r[i] = post(r[i] + v);
      }
  }

  ConvShape s_;
  ConvPass pass_;
  int threads_;
  PostRelu post_;  // forward only
  int64_t chunk_ = 1, col_floats_ = 0, rows_floats_ = 0, dw_floats_ = 0;
  bool small_output_ = false;  // weight gradient by small_gemm_nt instead of SGEMM
};

}  // namespace

ConvShape conv_shape(const Node& n, const Graph& g, ConvPass pass) {
  ConvParams p(n.attrs);
  auto in = [&](int i) { return g.value(n.inputs.at(i)).shape; };
  auto out = [&](int i) { return g.value(n.outputs.at(i)).shape; };
  Shape x, w, y;
  bool bias = false;
  switch (pass) {
    case ConvPass::forward:
      x = in(0), w = in(1), y = out(0);
      bias = n.inputs.size() == 3;
      break;
    case ConvPass::grad_input:
      y = in(0), w = in(1), x = out(0);
      break;
    case ConvPass::grad_weight:
      y = in(0), x = in(1), w = out(0);
      break;
  }
  return {x[0],       x[1],       x[2],    x[3],    y[1],    y[2],    y[3],     w[2], w[3],
          p.stride_h, p.stride_w, p.pad_h, p.pad_w, p.dil_h, p.dil_w, p.groups, bias};
}

std::unique_ptr<Kernel> make_gemm_conv(const KernelSpec& s, ConvPass pass) {
  return std::make_unique<GemmConv>(s, pass);
}

}  // namespace myelin::cpu

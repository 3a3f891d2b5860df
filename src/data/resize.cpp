#include "data/resize.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"

namespace myelin::data {

ResizeMode parse_resize_mode(const std::string& s) {
  if (s == "crop") return ResizeMode::crop;
  if (s == "squash") return ResizeMode::squash;
  if (s == "fill") return ResizeMode::fill;
  throw Error("unknown resize mode '" + s + "' (expected crop, squash or fill)");
}

namespace {

// For one axis: which two source pixels and what weight each output pixel reads, and the output
// range [begin, end) the picture covers (fill mode leaves black bars outside it).
struct Axis {
  std::vector<int> i0, i1;
  std::vector<float> w1;
  int begin = 0, end = 0;
};

// `inv` source pixels per output pixel; `src0` the source coordinate of the output's left edge.
Axis make_axis(int src, int dst, int begin, int end, double inv, double src0) {
  Axis a;
  a.begin = begin;
  a.end = end;
  a.i0.resize(static_cast<size_t>(dst));
  a.i1.resize(static_cast<size_t>(dst));
  a.w1.resize(static_cast<size_t>(dst));
  for (int x = begin; x < end; ++x) {
    double s = src0 + (x - begin + 0.5) * inv - 0.5;
    s = std::clamp(s, 0.0, static_cast<double>(src - 1));
    int i = static_cast<int>(s);
    a.i0[static_cast<size_t>(x)] = i;
    a.i1[static_cast<size_t>(x)] = std::min(i + 1, src - 1);
    a.w1[static_cast<size_t>(x)] = static_cast<float>(s - i);
  }
  return a;
}

void make_axes(const RawImage& src, int th, int tw, ResizeMode mode, Axis& ax, Axis& ay) {
  double sx = static_cast<double>(tw) / src.width, sy = static_cast<double>(th) / src.height;
  switch (mode) {
    case ResizeMode::squash:
      ax = make_axis(src.width, tw, 0, tw, 1 / sx, 0);
      ay = make_axis(src.height, th, 0, th, 1 / sy, 0);
      return;
    case ResizeMode::crop: {
      double s = std::max(sx, sy);
      ax = make_axis(src.width, tw, 0, tw, 1 / s, (src.width - tw / s) / 2);
      ay = make_axis(src.height, th, 0, th, 1 / s, (src.height - th / s) / 2);
      return;
    }
    case ResizeMode::fill: {
      double s = std::min(sx, sy);
      int w = std::clamp(static_cast<int>(std::lround(src.width * s)), 1, tw);
      int h = std::clamp(static_cast<int>(std::lround(src.height * s)), 1, th);
      ax = make_axis(src.width, tw, (tw - w) / 2, (tw - w) / 2 + w,
                     static_cast<double>(src.width) / w, 0);
      ay = make_axis(src.height, th, (th - h) / 2, (th - h) / 2 + h,
                     static_cast<double>(src.height) / h, 0);
      return;
    }
  }
}

// Resizes keeping the source's channels; planes of th x tw.
void resize_planes(const RawImage& src, int th, int tw, ResizeMode mode, uint8_t* dst) {
  const int c = src.channels;
  const size_t plane = static_cast<size_t>(th) * tw;
  const size_t row = static_cast<size_t>(src.width) * c;
  const uint8_t* p = src.pixels.data();
  if (src.width == tw && src.height == th) {  // the same size: a transpose to CHW
    for (int ch = 0; ch < c; ++ch)
      for (size_t i = 0; i < plane; ++i) dst[ch * plane + i] = p[i * c + ch];
    return;
  }
  Axis ax, ay;
  make_axes(src, th, tw, mode, ax, ay);
  std::fill(dst, dst + plane * c, uint8_t{0});
  for (int y = ay.begin; y < ay.end; ++y) {
    const uint8_t* r0 = p + ay.i0[y] * row;
    const uint8_t* r1 = p + ay.i1[y] * row;
    float wy = ay.w1[y];
    for (int x = ax.begin; x < ax.end; ++x) {
      size_t c0 = static_cast<size_t>(ax.i0[x]) * c, c1 = static_cast<size_t>(ax.i1[x]) * c;
      float wx = ax.w1[x];
      for (int ch = 0; ch < c; ++ch) {
        float top = r0[c0 + ch] + wx * (r0[c1 + ch] - r0[c0 + ch]);
        float bottom = r1[c0 + ch] + wx * (r1[c1 + ch] - r1[c0 + ch]);
        float v = top + wy * (bottom - top);
        dst[ch * plane + static_cast<size_t>(y) * tw + x] = static_cast<uint8_t>(v + 0.5f);
      }
    }
  }
}

}  // namespace

void resize_to_chw(const RawImage& src, int th, int tw, int channels, ResizeMode mode,
                   uint8_t* dst) {
  if (src.channels == channels) return resize_planes(src, th, tw, mode, dst);
  const size_t plane = static_cast<size_t>(th) * tw;
  thread_local std::vector<uint8_t> tmp;
  tmp.resize(plane * src.channels);
  resize_planes(src, th, tw, mode, tmp.data());
  if (src.channels == 1 && channels == 3) {
    for (int ch = 0; ch < 3; ++ch) std::copy(tmp.begin(), tmp.end(), dst + ch * plane);
  } else if (src.channels == 3 && channels == 1) {
    const uint8_t *r = tmp.data(), *g = r + plane, *b = g + plane;
    for (size_t i = 0; i < plane; ++i)
      dst[i] = static_cast<uint8_t>((299u * r[i] + 587u * g[i] + 114u * b[i] + 500u) / 1000u);
  } else {
    throw Error("cannot convert " + std::to_string(src.channels) + " channels to " +
                std::to_string(channels));
  }
}

}  // namespace myelin::data

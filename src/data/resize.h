// Bilinear resizing of decoded images to a dataset's fixed size, and gray/color conversion.
#pragma once
#include <cstdint>
#include <string>

#include "data/image_codec.h"

namespace myelin::data {

enum class ResizeMode {
  crop,    // scale to cover the target, then cut the middle out
  squash,  // stretch each axis to the target (aspect ratio not kept)
  fill,    // scale to fit inside the target, centred, the rest black
};

// "crop" | "squash" | "fill"; Error naming the choices otherwise.
ResizeMode parse_resize_mode(const std::string& s);

// Resizes `src` (HWC) to `channels` planes of th x tw (CHW) in `dst`, converting gray <-> RGB
// (gray = 0.299 R + 0.587 G + 0.114 B, as JPEG's Y). Pixel centres are aligned (half-pixel
// convention); the same size is an exact copy.
void resize_to_chw(const RawImage& src, int th, int tw, int channels, ResizeMode mode,
                   uint8_t* dst);

}  // namespace myelin::data

// PNG renderings of datasets for the web UI: the mean image, one example, a grid of examples of
// a class, and a grid of a source's first images before a dataset is made from it.
//
// Examples are drawn exactly as stored (8-bit, the dataset's size); grids put examples left to
// right, top to bottom, 1 pixel of white between them. Datasets of 1 (gray) or 3 (RGB)
// channels only: PNG has no other.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace myelin {

// The mean example (Dataset::mean_image, rounded to 8 bits). Stores keep it precomputed; other
// datasets read every example to compute it.
std::vector<uint8_t> mean_png(const Dataset& data);

// Example `index`, each pixel drawn as a scale x scale square (1 <= scale <= 64).
std::vector<uint8_t> example_png(const Dataset& data, int64_t index, int scale = 1);

// Up to `count` examples of class `label` (-1: of any class) chosen at random, the same for the
// same seed, in index order. Reads labels only (Dataset::label): cheap on stores.
std::vector<int64_t> sample_examples(const Dataset& data, int label, int count, uint64_t seed);

// Those examples (sample_examples) as a grid of `columns` (fewer when there are fewer examples).
// Error when the class has no examples, or the label, count or columns are out of range.
std::vector<uint8_t> examples_grid_png(const Dataset& data, int label, int count, int columns,
                                       uint64_t seed);

// Any examples, in the order given.
std::vector<uint8_t> grid_png(const Dataset& data, const std::vector<int64_t>& indices,
                              int columns);

// The first `count` images of a source (anything open_dataset accepts: an image folder, a list
// file, IDX files) decoded, converted and resized as `opts` would make them for a dataset, in a
// roughly square grid. Only those images are decoded. The validation split is ignored: the
// images come from the whole (training) set in the source's order.
std::vector<uint8_t> preview_source_png(const std::string& source_spec, const OpenOptions& opts,
                                        int count);

}  // namespace myelin

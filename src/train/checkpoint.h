// Checkpoints: weights and optimizer states in the safetensors format (readable by the
// `safetensors` Python package and PyTorch), the trainer's position in a JSON file, written
// atomically into one directory per snapshot:
//
//   OUT/checkpoints/iter-000123/weights.safetensors   parameters and states (batch-norm stats)
//   OUT/checkpoints/iter-000123/solver.safetensors    optimizer slots ("conv1.weight.opt0", ...)
//   OUT/checkpoints/iter-000123/trainer.json          TrainerState
//   OUT/checkpoints/latest -> iter-000123             symlink to the newest complete snapshot
//
// safetensors: 8-byte little-endian header length N, N bytes of JSON
//   {"__metadata__": {str: str}, "name": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}}
// then the tensor bytes, offsets relative to the end of the header.
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"
#include "model/network.h"

namespace myelin {

class Session;

struct NamedTensor {
  std::string name;
  Tensor tensor;  // host, contiguous
};

struct TensorFile {
  std::vector<NamedTensor> tensors;  // in the order of their data in the file
  std::map<std::string, std::string> metadata;
  const Tensor* find(const std::string& name) const;  // null if absent
};

// The serialized bytes (header and data). Throws Error for a dtype safetensors cannot name.
std::string encode_safetensors(const std::vector<NamedTensor>& tensors,
                               const std::map<std::string, std::string>& metadata = {});
// Parses a whole file held in memory; every offset and size is checked against `size`. Throws
// DataError with `path` and the byte offset of the problem.
TensorFile decode_safetensors(const void* data, size_t size, const std::string& path);
TensorFile read_safetensors(const std::string& path);
void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Writes a file so that a crash leaves either the old or the new contents: a temp file beside
// it, fsync, rename over, fsync of the directory. Throws Error naming the path and the errno.
void write_file_atomic(const std::string& path, std::string_view bytes);

// Where training stands; enough to continue exactly where it stopped.
struct TrainerState {
  int64_t iteration = 0;       // optimizer updates done
  int64_t micro_batches = 0;   // batches run forward/backward (the dropout step counter)
  int64_t epoch = 0;           // epoch of the next batch
  int64_t batch_in_epoch = 0;  // batches of that epoch already consumed
  int64_t max_iter = 0;        // the run's length in updates
  int64_t world_size = 1;      // data-parallel ranks (each reads `recipe.batch` per batch)
  uint64_t seed = 1;           // parameter init, data order, dropout masks
  double best_top1 = -1;       // best test accuracy so far (-1: not evaluated)
  int64_t best_iter = -1;
  double seconds = 0;                    // training wall time so far
  std::string network;                   // the network's name
  std::vector<std::string> class_names;  // the dataset's, in label order
  Recipe recipe;                         // the settings in force (network file + flags)
  nlohmann::json options;                // the TrainOptions as given, for the record
};

nlohmann::json recipe_to_json(const Recipe& r);
// Fields absent from `j` keep their defaults; a field of the wrong type throws Error naming it.
Recipe recipe_from_json(const nlohmann::json& j);
nlohmann::json state_to_json(const TrainerState& s);
TrainerState state_from_json(const nlohmann::json& j, const std::string& path);

// The __metadata__ of weights files: format, network, model (as given to train), iteration and
// class_names (a JSON array as text), so `classify` can name classes from the weights alone.
std::map<std::string, std::string> weights_metadata(const TrainerState& s);

struct Checkpoint {
  TensorFile weights, solver;
  TrainerState state;
};

// Writes RUN_DIR/checkpoints/iter-NNNNNN/ (replacing one of the same iteration), points
// `latest` at it and removes the oldest snapshots beyond `keep` (keep <= 0: keep all).
// Returns the snapshot's directory.
std::string save_checkpoint(const std::string& run_dir, const Checkpoint& c, int keep);
// A snapshot directory from DIR: a snapshot itself, a checkpoints directory, or a run directory
// (following `latest`). Throws UsageError saying what was looked for.
std::string find_checkpoint(const std::string& dir);
Checkpoint load_checkpoint(const std::string& snapshot_dir);
// The iteration of a snapshot directory's name ("iter-000300" -> 300), or -1 for anything else.
int64_t snapshot_iteration(const std::string& name);
// Snapshot directories under RUN_DIR/checkpoints, oldest first.
std::vector<std::string> list_checkpoints(const std::string& run_dir);

// Session <-> checkpoint. capture reads every persistent tensor to the host.
Checkpoint capture_checkpoint(Session& s, const TrainerState& state);
// Writes every parameter, state and optimizer slot back; throws DataError (naming the file and
// each missing or mis-shaped tensor) when the snapshot does not fit the session's network.
void restore_checkpoint(Session& s, const Checkpoint& c, const std::string& snapshot_dir);

// --weights FILE: parameters and states matched by name. FILE may be a .safetensors file, a
// snapshot or a run directory. Shape mismatches are an error listing every one of them; so are
// missing names when require_all (evaluation), and a file sharing no name with the network.
struct WeightsReport {
  std::string path;
  std::vector<std::string> loaded, missing, unused;
  std::string summary() const;  // "loaded 8 of 8 tensors from PATH; missing: ...; unused: ..."
};
WeightsReport load_weights(Session& s, const std::string& path, bool require_all);
// The weights file a path names (see load_weights).
std::string resolve_weights_path(const std::string& path);

}  // namespace myelin

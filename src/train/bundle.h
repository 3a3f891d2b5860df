// Model bundles: one .tar.gz holding what it takes to use a trained model elsewhere, made from a
// `myelin train` run directory:
//
//   info.json            recipe, dataset, device, precision, iterations, final metrics, date
//   network.yaml         the network (write_network), its train: section the recipe in force
//   labels.txt           class names, one a line, label order
//   weights.safetensors  the run's final weights, or its latest checkpoint's if it was stopped
//
// The network comes from RUN_DIR/network.yaml when the run has one (a network given as a spec
// rather than a name or file has no other record: whoever starts such a run writes it there),
// else from the model the run was started with (trainer.json's options.model).
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace myelin {

// Writes the bundle to `out_path` (a temp file beside it, then renamed) and returns what it
// wrote as info.json. Throws Error when the run has no weights (neither weights.safetensors nor
// a checkpoint) or its network cannot be found; DataError for a corrupt weights file.
nlohmann::json write_bundle(const std::string& run_dir, const std::string& out_path);

}  // namespace myelin

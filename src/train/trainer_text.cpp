// Trainer's text datasets (trainer_impl.h): the network's vocabulary fitted to the corpus, the
// token streams as batches, and the samples written after each test pass.
#include <algorithm>
#include <filesystem>
#include <memory>

#include "data/io.h"
#include "data/text.h"
#include "model/adapt.h"
#include "train/evaluate.h"
#include "train/sample.h"
#include "train/session.h"
#include "train/trainer_impl.h"

namespace myelin::detail {

namespace fs = std::filesystem;

// A text dataset sizes a new network's vocabulary (the embedding and the scores) to its own; a
// resumed or fine-tuned network must already have it.
void Trainer::fit_text_dataset() {
  if (!is_text_dataset(data_spec_)) return;
  if (spec_.input_type != "tokens")
    throw UsageError("dataset '" + data_spec_ + "' is text: it trains networks with input_type: " +
                     "tokens (such as --model char-lstm), and '" + spec_.name + "' reads images");
  text_ = load_text_dataset(data_spec_);
  const auto symbols = static_cast<int64_t>(text_->vocabulary.size());
  if (symbols == spec_.classes) return;
  if (resume_ || !o_.weights.empty()) check_text_vocabulary(data_spec_, symbols, spec_.classes);
  spec_ = adapt_network(spec_, spec_.input, symbols);
  // The fitted network is this run's own: kept beside it, named in its checkpoints and weights,
  // so resuming, testing and sampling find it.
  fs::path file = fs::absolute(fs::path(o_.out_dir) / "network.yaml");
  if (world_.is_root()) {
    fs::create_directories(file.parent_path());
    data::AtomicFile out(file.string());
    std::string text = write_network(spec_);
    out.write(text.data(), text.size());
    out.commit();
  }
  model_ = file.string();
}

// Contiguous streams of the training and validation text (see TextLoader), each rank its rows.
void Trainer::open_text_data() {
  const int64_t steps = spec_.input[0];
  auto train = std::make_shared<std::vector<int32_t>>(std::move(text_->train));
  if (train_limit_ > 0 && train_limit_ < static_cast<int64_t>(train->size()))
    train->resize(static_cast<size_t>(train_limit_));
  train_loader_ =
      std::make_unique<TextLoader>(train, recipe_.batch, steps, world_.rank, world_.size);
  bpe_ = train_loader_->batches_per_epoch();
  auto test = std::make_shared<std::vector<int32_t>>(std::move(text_->validation));
  if (test_limit_ > 0 && test_limit_ < static_cast<int64_t>(test->size()))
    test->resize(static_cast<size_t>(test_limit_));
  const int64_t rows = (static_cast<int64_t>(test->size()) - 1) / (steps * world_.size);
  if (rows >= 1)
    test_loader_ = std::make_unique<TextLoader>(test, std::min(o_.eval_batch, rows), steps,
                                                world_.rank, world_.size);
  class_names_ = text_->vocabulary;  // the symbols themselves: `myelin sample` decodes with them
  train_examples_ = static_cast<int64_t>(train->size());
  test_examples_ = test_loader_ ? static_cast<int64_t>(test->size()) : 0;
  data_description_ = "text (" + text_->level + "): " + std::to_string(train_examples_) +
                      " training and " + std::to_string(test_examples_) + " validation tokens, " +
                      std::to_string(class_names_.size()) + " symbols";
}

// Text networks that carry their state: 200 symbols drawn with the current weights after each
// test pass (a `sample` event), so a person sees the model learn to write.
void Trainer::write_sample() {
  if (!text_ || !world_.is_root()) return;
  if (!sampler_) {
    NetworkSpec one;
    try {
      one = sample_network(spec_);
    } catch (const UsageError&) {
      return;  // no carried state: nothing to sample from
    }
    SessionOptions so;
    so.device = Device::parse(device_);
    so.backend.threads = o_.threads;
    so.batch = so.eval_batch = 1;
    so.train = false;
    so.recipe = recipe_;
    sampler_ = std::make_unique<Session>(one, so);
  }
  for (const std::string& name : session_->param_names())
    sampler_->write(name, session_->read(name));
  const bool newline =
      std::find(class_names_.begin(), class_names_.end(), "\n") != class_names_.end();
  const std::string prime = newline ? "\n" : "";
  const double temperature = 0.8;
  std::string text =
      TextSampler(*sampler_, class_names_)
          .run(prime, 200, temperature, seed_ + static_cast<uint64_t>(st_.iteration));
  log_->write({{"event", "sample"},
               {"iter", st_.iteration},
               {"epoch", epoch()},
               {"prime", prime},
               {"temperature", temperature},
               {"text", text}});
  size_t shown = std::min<size_t>(text.size(), 100);
  while (shown < text.size() && (static_cast<unsigned char>(text[shown]) & 0xC0) == 0x80) --shown;
  progress_->line("sample: " + escape_text(text.substr(0, shown)));
}

}  // namespace myelin::detail

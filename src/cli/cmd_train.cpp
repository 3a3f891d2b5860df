// myelin train: train a network on a dataset, with checkpoints, metrics and exact resume.
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "cli/command.h"
#include "cli/common.h"
#include "cli/onnx_model.h"
#include "dist/communicator.h"
#include "dist/launch.h"
#include "train/trainer.h"

namespace myelin::cli {

namespace {

const std::vector<Flag>& train_flags() {
  static const std::vector<Flag> f = [] {
    std::vector<Flag> v = {
        {"model", "NAME|FILE",
         "a network file, a standard one in models/ (lenet, resnet, resnet9, mlp, alexnet, ...), "
         "or an .onnx model (fine-tuned from its weights)",
         ""},
        {"data", "SPEC", "fashion-mnist, mnist, an image folder, a list file or a packed store",
         "fashion-mnist, or the resumed run's"},
        {"out", "DIR", "where metrics.jsonl, checkpoints/ and weights.safetensors go", ""},
        {"epochs", "E", "passes over the training set", "network file"},
        {"iterations", "K", "optimizer updates instead of epochs", ""},
        {"batch", "B", "examples per batch", "network file"},
        {"solver", "S", "sgd, nesterov, adam, adamw, rmsprop or adagrad", "network file"},
        {"lr", "X", "base learning rate", "network file"},
        {"momentum", "X", "momentum (sgd, nesterov)", "network file"},
        {"beta1", "X", "Adam's first-moment decay", "0.9"},
        {"beta2", "X", "Adam's second-moment decay", "0.999"},
        {"rms-decay", "X", "RMSProp's squared-gradient decay", "0.99"},
        {"eps", "X", "Adam, RMSProp and AdaGrad denominator epsilon", "1e-8"},
        {"weight-decay", "X", "L2 weight decay (decoupled for adamw)", "network file"},
        {"lr-policy", "P", "fixed, step, multistep, exp, inv, poly or cosine", "network file"},
        {"gamma", "X", "decay factor of step, multistep, exp and inv", ""},
        {"power", "X", "exponent of inv and poly", ""},
        {"step-size", "K", "iterations between decays (step)", ""},
        {"milestones", "K,K,..", "iterations where multistep decays", ""},
        {"warmup", "K", "iterations of linear learning-rate warm-up", ""},
        {"clip", "X", "clip gradients to this global norm", "off"},
        {"accumulate", "K", "batches whose gradients add up before each update", "1"},
        {"label-smoothing", "X", "softmax cross-entropy label smoothing", "0"},
        {"seed", "N", "seed for weights, shuffling and dropout", "1"},
        {"resume", "DIR", "continue a run from its last checkpoint (model, data, recipe as saved)",
         ""},
        {"weights", "FILE", "start from trained weights (fine-tuning; matched by layer name)", ""},
        {"eval-every", "K", "iterations between test passes", "every epoch"},
        {"eval-batch", "B", "examples per batch in test passes", "100"},
        {"log-every", "K", "iterations between train-loss events in metrics.jsonl", "auto"},
        {"snapshot-every", "K", "iterations between checkpoints", "every epoch"},
        {"keep", "K", "checkpoints kept", "3"},
        {"loader-threads", "T", "threads decoding and augmenting batches", "2"},
        {"train-limit", "N", "use only the first N training examples", "all"},
        {"test-limit", "N", "use only the first N test examples", "all"},
        {"quiet", "", "no progress bar", ""},
        {"gpus", "N|I,J,..",
         "data-parallel on this host's GPUs: a count, or a list of device indices (one process "
         "per GPU, NCCL; --batch is per GPU)",
         ""}};
    for (const Flag& d : data_flags()) v.push_back(d);
    for (const Flag& d : device_flags()) v.push_back(d);
    v.push_back(conv_search_flag());
    return v;
  }();
  return f;
}

std::vector<int64_t> int_list(const std::string& flag, const std::string& s) {
  std::vector<int64_t> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      out.push_back(std::stoll(item));
    } catch (const std::exception&) {
      throw UsageError("--" + flag + " expects integers separated by commas, got '" + s + "'");
    }
  }
  return out;
}

RecipeOverrides overrides(const Args& a) {
  RecipeOverrides r;
  auto num = [&](const char* flag, std::optional<double>& dst) {
    if (a.has(flag)) dst = a.number(flag, 0);
  };
  auto integer = [&](const char* flag, std::optional<int64_t>& dst) {
    if (a.has(flag)) dst = a.integer(flag, 0);
  };
  if (a.has("solver")) r.solver = a.str("solver");
  if (a.has("lr-policy")) r.lr_policy = a.str("lr-policy");
  num("lr", r.lr), num("momentum", r.momentum), num("weight-decay", r.weight_decay);
  num("beta1", r.beta1), num("beta2", r.beta2), num("rms-decay", r.rms_decay), num("eps", r.eps);
  num("gamma", r.gamma), num("power", r.power), num("clip", r.clip_grad_norm),
      num("label-smoothing", r.label_smoothing);
  integer("step-size", r.step_size), integer("warmup", r.warmup_iters);
  integer("accumulate", r.accumulate), integer("batch", r.batch), integer("epochs", r.epochs);
  integer("iterations", r.max_iter);
  if (a.has("milestones")) r.milestones = int_list("milestones", a.str("milestones"));
  return r;
}

// A path the user typed is kept absolute, so that --resume works from any directory.
std::string absolute_if_path(const std::string& s) {
  std::error_code ec;
  if (s.empty() || !std::filesystem::exists(s, ec)) return s;
  return std::filesystem::absolute(s, ec).lexically_normal().string();
}

TrainOptions train_options(const Args& a) {
  TrainOptions o;
  o.model = absolute_if_path(a.str("model"));
  o.data = absolute_if_path(a.str("data"));  // empty: the resumed run's, else fashion-mnist
  o.open = open_options(a);
  o.device = a.str("device", "cpu");
  BackendOptions b = backend_from(a);
  o.threads = b.threads;
  o.precision = b.precision;
  o.conv_search = conv_search_from(a);
  o.loader_threads = static_cast<int>(a.integer("loader-threads", 2));
  o.seed = static_cast<uint64_t>(a.integer("seed", 1));
  o.out_dir = a.str("out");
  o.overrides = overrides(a);
  o.eval_every = a.integer("eval-every", 0);
  o.eval_batch = a.integer("eval-batch", o.eval_batch);
  o.log_every = a.integer("log-every", 0);
  o.snapshot_every = a.integer("snapshot-every", 0);
  o.keep = static_cast<int>(a.integer("keep", 3));
  o.resume = a.str("resume");
  o.weights = a.str("weights");
  o.train_limit = a.integer("train-limit", 0);
  o.test_limit = a.integer("test-limit", 0);
  o.quiet = a.has("quiet");
  // An ONNX model is imported into the run directory (resume reads it there) and starts from its
  // weights unless --weights says otherwise.
  const ModelFiles model = resolve_model(
      o.model, o.weights, (std::filesystem::path(o.out_dir) / "onnx").string(), o.quiet);
  o.model = model.model;
  o.weights = model.weights;
  return o;
}

// One rank of a data-parallel run: an error here ends every rank at once (a rank left waiting in
// a collective would hang), naming the rank that failed.
TrainResult train_rank(const TrainOptions& o, const dist::World& world) {
  try {
    TrainResult r = train(o);
    dist::finish();
    return r;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "myelin train: rank %d of %d: error: %s\n", world.rank, world.size,
                 e.what());
    std::fflush(stderr);
    dist::abort_run(dynamic_cast<const UsageError*>(&e) ? 2 : 1);
  }
}

int run_train(const std::vector<std::string>& argv) {
  const std::string help = help_text(
      "myelin train --model NAME|FILE --data SPEC --out DIR [flags]\n       myelin train --resume "
      "DIR [flags]",
      "Trains a network. The network file's `train:` section gives the recipe (solver, learning\n"
      "rate and policy, batch, epochs, augmentation); flags override it. Writes OUT/metrics.jsonl\n"
      "(one JSON event per line; the last is {\"event\": \"end\", \"test_accuracy\": ...}),\n"
      "checkpoints under OUT/checkpoints/ and the final OUT/weights.safetensors. Ctrl-C writes a\n"
      "checkpoint first; --resume OUT continues exactly where the run stopped.",
      train_flags(),
      "  myelin train --model lenet --data fashion-mnist --device cpu --threads 2 --out "
      "runs/lenet\n"
      "  myelin train --model resnet --data fashion-mnist --epochs 8 --out runs/resnet\n"
      "  myelin train --model lenet --data photos/ --size 28x28 --channels 1 --out runs/photos\n"
      "  myelin train --resume runs/lenet\n"
      "  myelin train --model alexnet --data imagenet.store --gpus 8 --batch 256 --out runs/a8\n"
      "  mpirun -np 4 myelin train --model lenet --batch 64 --out runs/mpi4   (4 CPU processes)\n"
      "\nData parallelism: each rank (a GPU under --gpus, a process under mpirun or srun) reads\n"
      "its own --batch examples per step, so the global batch is batch x ranks; gradients are\n"
      "averaged, so raise the learning rate with the global batch (linear scaling, with "
      "warm-up).\n");
  if (wants_help(argv, help)) return 0;
  Args a("train", argv, train_flags());
  if (!a.has("model") && !a.has("resume"))
    throw UsageError("--model is required (e.g. --model lenet); see --help");
  if (!a.has("out") && !a.has("resume"))
    throw UsageError("--out DIR is required: where metrics and checkpoints are written");
  TrainOptions o = train_options(a);
  if (o.out_dir.empty()) o.out_dir = o.resume;
  const dist::World world = dist::detect_world();
  if (a.has("gpus") && !world.distributed()) {
    std::vector<int> gpus = dist::parse_gpus(a.str("gpus"), dist::visible_gpus());
    if (gpus.size() > 1) return dist::launch_local(gpus);
    o.device = "cuda:" + std::to_string(gpus[0]);
    o.data_parallel = true;
  }
  TrainResult r = world.distributed() ? train_rank(o, world) : train(o);
  if (!world.is_root()) return r.stopped ? 130 : 0;  // rank 0 speaks for the run
  if (r.stopped) {
    std::fprintf(stderr, "stopped at iteration %lld; checkpoint %s (continue with --resume %s)\n",
                 static_cast<long long>(r.iterations), r.checkpoint.c_str(), o.out_dir.c_str());
    return 130;
  }
  std::printf("test accuracy %.2f%% (top-5 %.2f%%), %lld iterations in %.1f s; weights: %s\n",
              100 * r.test_top1, 100 * r.test_top5, static_cast<long long>(r.iterations), r.seconds,
              r.weights.c_str());
  return 0;
}

const bool registered = register_command(
    {"train", "train a network on a dataset (checkpoints, metrics, resume)", run_train});

}  // namespace

}  // namespace myelin::cli

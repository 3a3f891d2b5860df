// myelin.train's engine: the trainer of `myelin train` on numpy arrays (MemoryBatchSource), with
// a Python callback for each metrics event. The GIL is released while training runs and taken
// back only to call the callback and to check for Ctrl-C; an exception raised by the callback (or
// KeyboardInterrupt) stops training after its step, with a checkpoint, and is raised again.
#include <pybind11/functional.h>
#include <pybind11/stl.h>

#include <exception>

#include "memory_source.h"
#include "train/trainer.h"

#include "bindings.h"

namespace myelin::python {

using namespace pybind11::literals;

namespace {

// Examples [N, *input] float32 and labels [N] in [0, classes), checked, read in place.
struct Examples {
  py::array_t<float, py::array::c_style> x;
  py::array_t<int32_t, py::array::c_style> y;
  int64_t count = 0;
};

Examples examples(const NetworkSpec& spec, const py::handle& x, const py::handle& y,
                  const std::string& xname, const std::string& yname) {
  Examples e{float_array(x, xname.c_str()), label_array(y, yname.c_str())};
  check_examples(spec, e.x, xname);
  e.count = e.x.shape(0);
  if (e.y.ndim() != 1 || e.y.shape(0) != e.count)
    throw ShapeError(yname + " of shape " + shape_text(e.y) + " does not match " + xname +
                     ": expected [" + std::to_string(e.count) + "], one label per example");
  const int32_t* labels = e.y.data();
  for (int64_t i = 0; i < e.count; ++i)
    if (labels[i] < 0 || labels[i] >= spec.classes)
      throw DataError(yname, -1,
                      "label " + std::to_string(labels[i]) + " at index " + std::to_string(i) +
                          " is outside [0, " + std::to_string(spec.classes) + ") (network '" +
                          spec.name + "' has " + std::to_string(spec.classes) + " classes)");
  return e;
}

// The callback and Ctrl-C, called from the training thread without the GIL.
class PythonHooks {
 public:
  explicit PythonHooks(py::object callback) : callback_(std::move(callback)) {}
  TrainObserver observer() {
    TrainObserver o;
    if (!callback_.is_none())
      o.on_event = [this](const nlohmann::json& event) { call(event.dump()); };
    o.should_stop = [this] { return stop_requested(); };
    return o;
  }
  // After training, with the GIL: what the callback raised, or KeyboardInterrupt.
  void rethrow() {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void call(const std::string& event) {
    if (error_) return;
    py::gil_scoped_acquire gil;
    try {
      callback_(event);
    } catch (py::error_already_set&) {
      error_ = std::current_exception();
    }
  }
  bool stop_requested() {
    if (error_) return true;
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) error_ = std::make_exception_ptr(py::error_already_set());
    return error_ != nullptr;
  }
  py::object callback_;
  std::exception_ptr error_;
};

py::dict result_dict(const TrainResult& r) {
  return py::dict("iterations"_a = r.iterations, "epochs"_a = r.epochs, "seconds"_a = r.seconds,
                  "test_top1"_a = r.test_top1, "test_top5"_a = r.test_top5,
                  "test_loss"_a = r.test_loss, "best_top1"_a = r.best_top1,
                  "best_iter"_a = r.best_iter, "stopped"_a = r.stopped,
                  "checkpoint"_a = r.checkpoint, "weights"_a = r.weights);
}

py::dict train(TrainOptions o, const NetworkSpec& spec, const py::handle& x_train,
               const py::handle& y_train, const py::handle& x_test, const py::handle& y_test,
               std::vector<std::string> class_names, const py::object& callback) {
  Examples train = examples(spec, x_train, y_train, "x_train", "y_train");
  const int64_t batch = o.overrides.batch.value_or(spec.recipe.batch);
  if (train.count < batch)
    throw UsageError("x_train holds " + std::to_string(train.count) +
                     " examples, fewer than one batch of " + std::to_string(batch));
  BatchSources s;
  s.train = std::make_shared<MemoryBatchSource>(train.x.data(), train.y.data(), train.count,
                                                spec.input, batch, true, o.seed);
  s.train_examples = train.count;
  std::optional<Examples> test;
  if (!x_test.is_none()) {
    test = examples(spec, x_test, y_test, "x_test", "y_test");
    s.test = std::make_shared<MemoryBatchSource>(
        test->x.data(), test->y.data(), test->count, spec.input,
        std::max<int64_t>(1, std::min(o.eval_batch, test->count)), false, o.seed);
    s.test_examples = test->count;
  }
  s.class_names = std::move(class_names);
  s.description = "numpy arrays: " + std::to_string(train.count) + " training and " +
                  std::to_string(s.test_examples) + " test examples";
  o.spec = spec;
  o.sources = std::move(s);
  o.handle_signals = false;  // Python's own handler sees Ctrl-C (PythonHooks)
  PythonHooks hooks(callback);
  TrainResult r;
  {
    py::gil_scoped_release nogil;
    r = myelin::train(o, hooks.observer());
  }
  hooks.rethrow();
  return result_dict(r);
}

void bind_options(py::module_& m) {
  py::class_<RecipeOverrides>(m, "RecipeOverrides")
      .def(py::init<>())
      .def_readwrite("solver", &RecipeOverrides::solver)
      .def_readwrite("lr_policy", &RecipeOverrides::lr_policy)
      .def_readwrite("lr", &RecipeOverrides::lr)
      .def_readwrite("momentum", &RecipeOverrides::momentum)
      .def_readwrite("weight_decay", &RecipeOverrides::weight_decay)
      .def_readwrite("beta1", &RecipeOverrides::beta1)
      .def_readwrite("beta2", &RecipeOverrides::beta2)
      .def_readwrite("rms_decay", &RecipeOverrides::rms_decay)
      .def_readwrite("eps", &RecipeOverrides::eps)
      .def_readwrite("gamma", &RecipeOverrides::gamma)
      .def_readwrite("power", &RecipeOverrides::power)
      .def_readwrite("clip_grad_norm", &RecipeOverrides::clip_grad_norm)
      .def_readwrite("label_smoothing", &RecipeOverrides::label_smoothing)
      .def_readwrite("step_size", &RecipeOverrides::step_size)
      .def_readwrite("warmup_iters", &RecipeOverrides::warmup_iters)
      .def_readwrite("accumulate", &RecipeOverrides::accumulate)
      .def_readwrite("batch", &RecipeOverrides::batch)
      .def_readwrite("epochs", &RecipeOverrides::epochs)
      .def_readwrite("max_iter", &RecipeOverrides::max_iter)
      .def_readwrite("milestones", &RecipeOverrides::milestones);
  py::class_<TrainOptions>(m, "TrainOptions")
      .def(py::init<>())
      .def_readwrite("model", &TrainOptions::model)
      .def_readwrite("device", &TrainOptions::device)
      .def_readwrite("threads", &TrainOptions::threads)
      .def_readwrite("precision", &TrainOptions::precision)
      .def_readwrite("seed", &TrainOptions::seed)
      .def_readwrite("out_dir", &TrainOptions::out_dir)
      .def_readwrite("overrides", &TrainOptions::overrides)
      .def_readwrite("eval_every", &TrainOptions::eval_every)
      .def_readwrite("snapshot_every", &TrainOptions::snapshot_every)
      .def_readwrite("log_every", &TrainOptions::log_every)
      .def_readwrite("keep", &TrainOptions::keep)
      .def_readwrite("eval_batch", &TrainOptions::eval_batch)
      .def_readwrite("resume", &TrainOptions::resume)
      .def_readwrite("weights", &TrainOptions::weights)
      .def_readwrite("quiet", &TrainOptions::quiet);
}

}  // namespace

void bind_training(py::module_& m) {
  bind_options(m);
  m.def("train", &train, "options"_a, "spec"_a, "x_train"_a, "y_train"_a, "x_test"_a, "y_test"_a,
        "class_names"_a, "callback"_a);
}

}  // namespace myelin::python

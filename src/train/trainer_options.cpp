// RecipeOverrides and TrainOptions: applying flags to a recipe, and their JSON record.
#include "train/checkpoint.h"
#include "train/trainer.h"

namespace myelin {

using json = nlohmann::json;

namespace {

template <class T>
void set_if(const std::optional<T>& v, T& field) {
  if (v) field = *v;
}

template <class T>
void put_if(json& j, const char* key, const std::optional<T>& v) {
  if (v) j[key] = *v;
}

}  // namespace

Recipe RecipeOverrides::apply(Recipe r) const {
  set_if(solver, r.solver);
  set_if(lr_policy, r.lr_policy);
  set_if(lr, r.lr);
  set_if(momentum, r.momentum);
  set_if(weight_decay, r.weight_decay);
  set_if(beta1, r.beta1);
  set_if(beta2, r.beta2);
  set_if(rms_decay, r.rms_decay);
  set_if(eps, r.eps);
  set_if(gamma, r.gamma);
  set_if(power, r.power);
  set_if(clip_grad_norm, r.clip_grad_norm);
  set_if(label_smoothing, r.label_smoothing);
  set_if(step_size, r.step_size);
  set_if(warmup_iters, r.warmup_iters);
  set_if(accumulate, r.accumulate);
  set_if(batch, r.batch);
  set_if(milestones, r.milestones);
  // Epochs and iterations are two ways to give one length: the one given wins.
  if (epochs) r.epochs = *epochs, r.max_iter = 0;
  set_if(max_iter, r.max_iter);
  return r;
}

json RecipeOverrides::to_json() const {
  json j = json::object();
  put_if(j, "solver", solver);
  put_if(j, "lr_policy", lr_policy);
  put_if(j, "lr", lr);
  put_if(j, "momentum", momentum);
  put_if(j, "weight_decay", weight_decay);
  put_if(j, "beta1", beta1);
  put_if(j, "beta2", beta2);
  put_if(j, "rms_decay", rms_decay);
  put_if(j, "eps", eps);
  put_if(j, "gamma", gamma);
  put_if(j, "power", power);
  put_if(j, "clip_grad_norm", clip_grad_norm);
  put_if(j, "label_smoothing", label_smoothing);
  put_if(j, "step_size", step_size);
  put_if(j, "warmup_iters", warmup_iters);
  put_if(j, "accumulate", accumulate);
  put_if(j, "batch", batch);
  put_if(j, "epochs", epochs);
  put_if(j, "max_iter", max_iter);
  put_if(j, "milestones", milestones);
  return j;
}

json TrainOptions::to_json() const {
  return {{"model", model},
          {"data", data},
          {"device", device},
          {"threads", threads},
          {"loader_threads", loader_threads},
          {"precision", precision},
          {"conv_search", conv_search},
          {"seed", seed},
          {"out_dir", out_dir},
          {"overrides", overrides.to_json()},
          {"eval_every", eval_every},
          {"snapshot_every", snapshot_every},
          {"log_every", log_every},
          {"keep", keep},
          {"eval_batch", eval_batch},
          {"resume", resume},
          {"weights", weights},
          {"train_limit", train_limit},
          {"test_limit", test_limit}};
}

}  // namespace myelin

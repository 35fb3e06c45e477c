// The training toolkit: AdamW and parameter groups against PyTorch's numbers, LR schedules,
// EMA, gradient clipping and accumulation, min-SNR weights, and checkpoints (atomic, pruned,
// resumable bit for bit, refusing broken or foreign folders).
// PyTorch reference numbers: tests/reference/optim_reference.py (torch 1.13, float64).
#include <unistd.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <numbers>
#include <numeric>
#include <string>
#include <vector>

#include "capture_warnings.hpp"
#include "diffuse/autograd/elementwise.hpp"
#include "diffuse/autograd/reduce.hpp"
#include "diffuse/core/tensor.hpp"
#include "diffuse/data/dataloader.hpp"
#include "diffuse/data/tensor_dataset.hpp"
#include "diffuse/nn/functional.hpp"
#include "diffuse/nn/group_norm.hpp"
#include "diffuse/nn/linear.hpp"
#include "diffuse/optim/adamw.hpp"
#include "diffuse/optim/clip_grad.hpp"
#include "diffuse/optim/ema.hpp"
#include "diffuse/optim/lr_scheduler.hpp"
#include "diffuse/optim/param_groups.hpp"
#include "diffuse/optim/sgd.hpp"
#include "diffuse/training/checkpoint.hpp"
#include "diffuse/training/gradient_accumulation.hpp"
#include "diffuse/training/min_snr.hpp"
#include "diffuse/training/resumable_loader.hpp"
#include "diffuse/training/sample_streams.hpp"

using namespace diffuse;
namespace fs = std::filesystem;

namespace {

// The loss of the reference script: sum((p - c)^2 * w) + 0.1 * sum(p^3).
Tensor<double> ref_loss(const Tensor<double>& p) {
  Tensor<double> c({3}, {0.3, 0.1, -0.2}), w({3}, {1, 2, 3});
  return sum(square(p - c) * w) + sum(pow(p, 3.0)) * 0.1;
}

std::vector<double> adamw_trajectory(optim::AdamWOptions o) {
  Tensor<double> p({3}, {1.0, -2.0, 0.5});
  p.requires_grad_();
  optim::AdamW<double> opt({p}, o);
  for (int i = 0; i < 5; ++i) {
    opt.zero_grad();
    ref_loss(p).backward();
    opt.step();
  }
  return p.to_vector();
}

void check_close(const std::vector<double>& got, const std::vector<double>& want, double tol = 1e-12) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i] == Approx(want[i]).epsilon(tol).margin(tol));
}

// A fresh, empty temporary folder for one test.
fs::path temp_dir(const std::string& name) {
  fs::path p =
      fs::temp_directory_path() / ("diffuse_test_training_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

// A small MLP with dropout drawing from a given Generator.
struct Net : nn::Module<float> {
  explicit Net(Generator& init) {
    fc1 = register_module("fc1", std::make_shared<nn::Linear<float>>(4, 16, true, init));
    norm = register_module("norm", std::make_shared<nn::GroupNorm<float>>(4, 16));
    fc2 = register_module("fc2", std::make_shared<nn::Linear<float>>(16, 4, true, init));
  }
  Tensor<float> operator()(const Tensor<float>& x, Generator& gen) const {
    Tensor<float> h = silu((*fc1)(x));
    h = nn::functional::dropout(h, 0.25, is_training(), gen);
    return (*fc2)(h);
  }
  std::shared_ptr<nn::Linear<float>> fc1, fc2;
  std::shared_ptr<nn::GroupNorm<float>> norm;  // only to have a norm weight in the groups
};

bool same_bits(const Tensor<float>& a, const Tensor<float>& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), sizeof(float) * a.numel()) == 0;
}

// Everything a run ends with, to compare bit for bit.
struct RunResult {
  std::map<std::string, Tensor<float>> params, ema, opt_tensors;
  std::vector<double> lrs;
  GeneratorState gen;
  training::LoaderPosition position;
  std::int64_t global_step = 0;
};

// Trains the Net on a shuffled 10-sample dataset (batches of 3: 4 per epoch) with AdamW over
// decay / no-decay groups, a cosine schedule with warmup, EMA, clipping and dropout, up to
// `total` steps. With `stop_at`, saves a checkpoint there and returns at once (dropping every
// object); with `resume`, first loads the latest checkpoint of `dir`.
RunResult train_run(const fs::path& dir, std::int64_t total, std::int64_t stop_at, bool resume,
                    std::optional<std::int64_t> limit = std::nullopt) {
  Generator init(7), data_gen(11);
  const Tensor<float> samples = data_gen.randn<float>({10, 4});
  data::TensorDataset<float> dataset(samples);
  Generator gen(2024);
  data::DataLoader loader(dataset, {.batch_size = 3, .shuffle = true}, gen);
  training::ResumableLoader epochs(loader, gen);
  Net net(init);
  optim::AdamW<float> opt(optim::weight_decay_groups(net, 0.05), {.lr = 2e-2});
  auto sched = optim::get_scheduler("cosine", opt, {.num_warmup_steps = 2, .num_training_steps = total});
  optim::EMAModel<float> ema(net, {.decay = 0.99, .use_ema_warmup = true, .power = 0.75});
  training::TrainingState<float> state{.model = &net,
                                       .optimizer = &opt,
                                       .lr_scheduler = &sched,
                                       .ema = &ema,
                                       .generators = {{"train", &gen}},
                                       .data_loader = &epochs};
  training::CheckpointManager checkpoints(dir, {.checkpoints_total_limit = limit});
  if (resume) REQUIRE(checkpoints.resume("latest", state));

  while (state.global_step < total) {
    for (auto& batch : epochs) {
      Tensor<float> noise = gen.randn<float>(batch.images.shape());
      Tensor<float> noisy = batch.images + noise * 0.3f;
      Tensor<float> loss = nn::functional::mse_loss(net(noisy, gen), batch.images);
      opt.zero_grad();
      loss.backward();
      optim::clip_grad_norm_(net.parameters(), 0.5);
      opt.step();
      sched.step();
      ema.step(net);
      ++state.global_step;
      state.epoch = epochs.epoch();
      if (state.global_step == stop_at) {
        checkpoints.save(state);
        return {};
      }
      if (limit) checkpoints.save(state);
      if (state.global_step == total) break;
    }
  }
  RunResult r;
  for (auto& [name, p] : net.state_dict()) r.params.emplace(name, p.clone());
  r.ema = ema.shadow_state();
  r.opt_tensors = opt.state_dict().tensors;
  r.lrs = sched.get_last_lr();
  r.gen = gen.state();
  r.position = epochs.position();
  r.global_step = state.global_step;
  return r;
}

void require_same(const RunResult& a, const RunResult& b) {
  REQUIRE(a.params.size() == b.params.size());
  for (auto& [name, t] : a.params) CHECK(same_bits(t, b.params.at(name)));
  REQUIRE(a.ema.size() == b.ema.size());
  for (auto& [name, t] : a.ema) CHECK(same_bits(t, b.ema.at(name)));
  REQUIRE(a.opt_tensors.size() == b.opt_tensors.size());
  for (auto& [name, t] : a.opt_tensors) CHECK(same_bits(t, b.opt_tensors.at(name)));
  CHECK(a.lrs == b.lrs);
  CHECK(a.gen == b.gen);
  CHECK(a.position == b.position);
  CHECK(a.global_step == b.global_step);
}

}  // namespace

TEST_CASE("AdamW follows torch.optim.AdamW step for step") {
  check_close(adamw_trajectory({.lr = 0.1}), {0.511652543199551, -1.493312515040534, 0.013581155724797678});
  check_close(adamw_trajectory({.lr = 0.05, .beta1 = 0.8, .beta2 = 0.99, .eps = 1e-6, .weight_decay = 0.1}),
              {0.7326920839468014, -1.7041164828499125, 0.24461959505725153});
  CHECK(optim::AdamWOptions{}.weight_decay == 0.01);
  Tensor<double> p({1}, {1.0});
  p.requires_grad_();
  CHECK_THROWS_WITH(optim::AdamW<double>({p}, {.beta1 = 1.0}), Catch::Contains("betas"));
  CHECK_THROWS_WITH(optim::AdamW<double>({p}, {.lr = -1}), Catch::Contains("learning rate"));
  CHECK_THROWS_WITH(optim::AdamW<double>({{.params = {p}}, {.params = {p}}}),
                    Catch::Contains("more than once"));
}

TEST_CASE("parameter groups keep their lr and weight decay under a schedule, as in PyTorch") {
  Tensor<double> p({3}, {1.0, -2.0, 0.5}), q({2}, {0.7, -0.3});
  p.requires_grad_();
  q.requires_grad_();
  optim::AdamW<double> opt(
      {{.params = {p}, .weight_decay = 0.1}, {.params = {q}, .lr = 0.2, .weight_decay = 0.0}},
      {.lr = 0.1, .weight_decay = 0.01});
  auto sched = optim::get_scheduler("cosine", opt, {.num_warmup_steps = 2, .num_training_steps = 8});
  CHECK(opt.param_groups()[0].lr == 0.0);  // warmup starts at 0, like LambdaLR's first step
  for (int i = 0; i < 6; ++i) {
    opt.zero_grad();
    (ref_loss(p) + sum(square(q) * 0.5) + sum(q)).backward();
    opt.step();
    sched.step();
  }
  check_close(p.to_vector(), {0.6091729610410419, -1.5660149939723371, 0.12649900227669214});
  check_close(q.to_vector(), {-0.026020795043411357, -0.9921141229378599});
  check_close(sched.get_last_lr(), {0.025000000000000012, 0.050000000000000024});
}

TEST_CASE(
    "an LR schedule keeps no learning rates of its own: optimizer and schedule restore in either order") {
  auto make = [](Tensor<double>& p, Tensor<double>& q) {
    p = Tensor<double>({2}, {1.0, -1.0});
    q = Tensor<double>({1}, {0.5});
    p.requires_grad_();
    q.requires_grad_();
    return optim::AdamW<double>({{.params = {p}}, {.params = {q}, .lr = 0.2}}, {.lr = 0.1});
  };
  Tensor<double> p, q;
  auto opt = make(p, q);
  auto sched = optim::get_scheduler("linear", opt, {.num_warmup_steps = 1, .num_training_steps = 10});
  for (int i = 0; i < 4; ++i) {
    opt.zero_grad();
    (sum(square(p)) + sum(q)).backward();
    opt.step();
    sched.step();
  }
  const auto opt_state = opt.state_dict();
  const auto sched_state = sched.state_dict();
  CHECK(!sched_state.contains("base_lrs"));
  const std::vector<double> expected{0.1 * 6 / 9, 0.2 * 6 / 9};  // linear decay at step 4 of 10, warmup 1
  check_close(sched.get_last_lr(), expected);

  for (bool schedule_first : {true, false}) {
    Tensor<double> p2, q2;
    auto opt2 = make(p2, q2);
    auto sched2 = optim::get_scheduler("linear", opt2, {.num_warmup_steps = 1, .num_training_steps = 10});
    if (schedule_first) sched2.load_state_dict(sched_state);
    opt2.load_state_dict(opt_state);
    if (!schedule_first) sched2.load_state_dict(sched_state);
    check_close(sched2.get_last_lr(), expected);
    CHECK(sched2.get_last_lr() == std::vector<double>{opt2.param_groups()[0].lr, opt2.param_groups()[1].lr});
    sched2.step();
    check_close(sched2.get_last_lr(), {0.1 * 5 / 9, 0.2 * 5 / 9});
  }
  // A state written by earlier versions (with base_lrs) still loads.
  auto old_state = sched_state;
  old_state["base_lrs"] = {0.1, 0.2};
  CHECK_NOTHROW(sched.load_state_dict(old_state));
  check_close(sched.get_last_lr(), expected);
}

TEST_CASE("weight_decay_groups exempts biases and norms") {
  Generator init(1);
  Net net(init);
  auto groups = optim::weight_decay_groups(net, 0.03);
  REQUIRE(groups.size() == 2);
  CHECK(groups[0].weight_decay == 0.03);
  CHECK(groups[1].weight_decay == 0.0);
  CHECK(groups[0].params.size() == 2);  // fc1.weight, fc2.weight
  CHECK(groups[0].params[0].is_same(net.fc1->weight));
  CHECK(groups[0].params[1].is_same(net.fc2->weight));
  CHECK(groups[1].params.size() == 4);  // fc1.bias, norm.weight, norm.bias, fc2.bias
  CHECK(optim::is_no_decay_parameter("down.0.norm1.weight", {8, 8}));
  CHECK_FALSE(optim::is_no_decay_parameter("down.0.conv1.weight", {8, 8, 3, 3}));
}

TEST_CASE("SGD and Adam keep their PyTorch trajectories with groups") {
  // One group built explicitly gives the same as the parameter list (numbers of tests/test_nn.cpp).
  Tensor<double> p({3}, {1.0, -2.0, 0.5});
  p.requires_grad_();
  optim::SGD<double> opt(std::vector<optim::ParamGroup<double>>{{.params = {p}}},
                         {.lr = 0.05, .momentum = 0.9, .nesterov = true});
  for (int i = 0; i < 5; ++i) {
    opt.zero_grad();
    ref_loss(p).backward();
    opt.step();
  }
  check_close(p.to_vector(), {0.14723181130836774, 0.8970584127490735, -0.45568238195988214});
}

TEST_CASE("LR schedules: diffusers' multipliers at chosen steps") {
  const double lr = 1e-3;
  auto at = [&](const std::string& name, optim::ScheduleOptions o, std::int64_t step) {
    return optim::schedule_lambda(name, o, lr)(step);
  };
  const optim::ScheduleOptions o{.num_warmup_steps = 10, .num_training_steps = 110};
  CHECK(at("constant", {}, 0) == 1.0);
  CHECK(at("constant", {}, 1000) == 1.0);
  CHECK(at("constant_with_warmup", {.num_warmup_steps = 4}, 0) == 0.0);
  CHECK(at("constant_with_warmup", {.num_warmup_steps = 4}, 1) == 0.25);
  CHECK(at("constant_with_warmup", {.num_warmup_steps = 4}, 4) == 1.0);
  CHECK(at("linear", o, 5) == Approx(0.5));
  CHECK(at("linear", o, 10) == Approx(1.0));
  CHECK(at("linear", o, 60) == Approx(0.5));
  CHECK(at("linear", o, 110) == 0.0);
  CHECK(at("linear", o, 500) == 0.0);
  CHECK(at("cosine", o, 5) == Approx(0.5));
  CHECK(at("cosine", o, 35) == Approx(0.5 * (1 + std::cos(std::numbers::pi / 4))));  // progress 1/4
  CHECK(at("cosine", o, 60) == Approx(0.5));
  CHECK(at("cosine", o, 110) == Approx(0.0).margin(1e-15));
  // num_cycles 2: a restart halfway
  optim::ScheduleOptions r = o;
  r.num_cycles = 2;
  CHECK(at("cosine_with_restarts", r, 35) == Approx(0.5));
  CHECK(at("cosine_with_restarts", r, 59) == Approx(0.5 * (1 + std::cos(std::numbers::pi * 0.98))));
  CHECK(at("cosine_with_restarts", r, 60) == Approx(1.0));
  CHECK(at("cosine_with_restarts", r, 110) == 0.0);
  CHECK(at("cosine_with_restarts", o, 35) ==
        Approx(0.5 * (1 + std::cos(std::numbers::pi / 4))));  // default 1 cycle
  // polynomial from 1e-3 to 1e-4 with power 2: at half-way 0.9e-3 * 0.25 + 1e-4 = 3.25e-4
  optim::ScheduleOptions poly = o;
  poly.power = 2;
  poly.lr_end = 1e-4;
  CHECK(at("polynomial", poly, 5) == Approx(0.5));
  CHECK(at("polynomial", poly, 10) == Approx(1.0));
  CHECK(at("polynomial", poly, 60) == Approx(0.325));
  CHECK(at("polynomial", poly, 110) == Approx(0.1));
  CHECK(at("polynomial", poly, 300) == Approx(0.1));

  CHECK_THROWS_WITH(at("cosine_annealing", o, 0), Catch::Contains("unknown schedule 'cosine_annealing'") &&
                                                      Catch::Contains("constant_with_warmup") &&
                                                      Catch::Contains("polynomial"));
  CHECK_THROWS_WITH(at("linear", {}, 0), Catch::Contains("num_warmup_steps"));
  CHECK_THROWS_WITH(at("cosine", {.num_warmup_steps = 3}, 0), Catch::Contains("num_training_steps"));
  CHECK_THROWS_WITH(at("polynomial", {.num_warmup_steps = 0, .num_training_steps = 10, .lr_end = 1e-2}, 0),
                    Catch::Contains("lr_end"));

  // The scheduler object sets the lrs: initial_lr * multiplier(step), step 0 at construction.
  Tensor<float> w({2});
  w.requires_grad_();
  optim::SGD<float> opt({w}, {.lr = 0.4});
  auto sched = optim::get_scheduler("linear", opt, {.num_warmup_steps = 2, .num_training_steps = 6});
  std::vector<double> seen{opt.lr()};
  for (int i = 0; i < 6; ++i) {
    sched.step();
    seen.push_back(opt.lr());
  }
  check_close(seen, {0.0, 0.2, 0.4, 0.3, 0.2, 0.1, 0.0}, 1e-15);
}

TEST_CASE("EMAModel: diffusers' decay schedule, step, copy_to, store/restore") {
  Tensor<float> p({1}, {1.0f});
  p.requires_grad_();
  optim::EMAModel<float> plain({p});  // decay 0.9999, no warmup
  CHECK(plain.get_decay(0) == 0.0);
  CHECK(plain.get_decay(1) == 0.0);
  CHECK(plain.get_decay(2) == Approx(2.0 / 11.0));
  CHECK(plain.get_decay(11) == Approx(11.0 / 20.0));
  CHECK(plain.get_decay(10'000'000) == Approx(0.9999));
  optim::EMAModel<float> warm(
      {p}, {.decay = 0.999, .update_after_step = 5, .use_ema_warmup = true, .inv_gamma = 2.0, .power = 0.75});
  CHECK(warm.get_decay(6) == 0.0);
  CHECK(warm.get_decay(16) == Approx(1 - std::pow(1 + 10 / 2.0, -0.75)));
  CHECK(warm.get_decay(1'000'000) == Approx(0.999));
  optim::EMAModel<float> floor({p}, {.min_decay = 0.5});
  CHECK(floor.get_decay(2) == 0.5);
  CHECK(floor.get_decay(1) == 0.0);  // before any averaging the shadow follows the parameters

  // step: the first step copies (decay 0), the second uses 2/11.
  optim::EMAModel<float> ema({p});
  p.data()[0] = 2.0f;
  ema.step({p});
  CHECK(ema.shadow_params()[0].item() == 2.0f);
  p.data()[0] = 3.0f;
  ema.step({p});
  CHECK(ema.cur_decay_value() == Approx(2.0 / 11.0));
  CHECK(ema.shadow_params()[0].item() == Approx(2.0 + 9.0 / 11.0));
  // a frozen parameter is copied
  Tensor<float> frozen({1}, {5.0f});
  optim::EMAModel<float> ef({frozen});
  ef.step({frozen});
  frozen.data()[0] = 7.0f;
  ef.step({frozen});
  CHECK(ef.shadow_params()[0].item() == 7.0f);

  ema.store({p});
  ema.copy_to({p});
  CHECK(p.item() == Approx(2.0 + 9.0 / 11.0));
  ema.restore({p});
  CHECK(p.item() == 3.0f);
  CHECK_THROWS_WITH(ema.restore({p}), Catch::Contains("store()"));
  CHECK_THROWS_WITH(ema.step({p, p}), Catch::Contains("2 parameters given"));
  Tensor<float> wrong({2});
  CHECK_THROWS_WITH(ema.copy_to({wrong}), Catch::Contains("shape"));

  // module form: named like the module's parameters
  Generator init(3);
  Net net(init);
  optim::EMAModel<float> em(net);
  CHECK(em.names().front() == "fc1.weight");
  CHECK(em.shadow_state().count("norm.bias") == 1);
}

TEST_CASE("clip_grad_norm_ matches torch.nn.utils.clip_grad_norm_") {
  auto run = [](double norm_type, double max_norm, std::vector<double>& a_out, std::vector<double>& b_out) {
    Tensor<double> a({2}), b({2, 2}), none({3});
    a.requires_grad_();
    b.requires_grad_();
    none.requires_grad_();  // no gradient: skipped
    a.set_grad(Tensor<double>({2}, {3.0, -4.0}));
    b.set_grad(Tensor<double>({2, 2}, {1.0, -2.0, 0.5, 2.5}));
    const double total = optim::clip_grad_norm_<double>({a, b, none}, max_norm, norm_type);
    a_out = a.grad().to_vector();
    b_out = b.grad().to_vector();
    return total;
  };
  std::vector<double> a, b;
  CHECK(run(2.0, 2.0, a, b) == Approx(6.041522986797286).epsilon(1e-14));
  check_close(a, {0.9931269019393071, -1.3241692025857428});
  check_close(b, {0.3310423006464357, -0.6620846012928714, 0.16552115032321785, 0.8276057516160893});
  CHECK(run(std::numeric_limits<double>::infinity(), 2.0, a, b) == 4.0);
  check_close(a, {1.4999996250000938, -1.999999500000125});
  check_close(b, {0.49999987500003124, -0.9999997500000625, 0.24999993750001562, 1.249999687500078});
  CHECK(run(1.0, 2.0, a, b) == Approx(13.0));
  check_close(a, {0.46153842603550577, -0.615384568047341});
  CHECK(run(2.0, 100.0, a, b) == Approx(6.041522986797286));
  check_close(a, {3.0, -4.0});  // below max_norm: untouched

  Tensor<double> n({1});
  n.requires_grad_();
  n.set_grad(Tensor<double>({1}, {std::numeric_limits<double>::infinity()}));
  CHECK_THROWS_WITH(optim::clip_grad_norm_<double>({n}, 1.0, 2.0, true), Catch::Contains("non-finite"));
  CHECK_THROWS_WITH(optim::clip_grad_norm_<double>({n}, -1.0), Catch::Contains("max_norm"));
  CHECK(optim::clip_grad_norm_<double>({}, 1.0) == 0.0);
}

TEST_CASE("gradient accumulation: k micro-batches give the gradient of one big batch") {
  Generator g(5);
  const Tensor<double> x = g.randn<double>({8, 3}), y = g.randn<double>({8, 2});
  auto gradients = [&](std::int64_t k) {
    Generator init(9);
    nn::Linear<double> lin(3, 2, true, init);
    training::GradientAccumulation accum(k);
    const std::int64_t per = 8 / k;
    int syncs = 0;
    for (std::int64_t m = 0; m < k; ++m) {
      auto loss = accum.scale(
          nn::functional::mse_loss(lin(x.slice(m * per, (m + 1) * per)), y.slice(m * per, (m + 1) * per)));
      loss.backward();
      syncs += accum.sync();
    }
    CHECK(syncs == 1);
    CHECK(accum.micro_step() == k);
    std::vector<double> out = lin.weight.grad().to_vector(), b = lin.bias.grad().to_vector();
    out.insert(out.end(), b.begin(), b.end());
    return out;
  };
  const auto big = gradients(1);
  check_close(gradients(4), big, 1e-13);
  check_close(gradients(2), big, 1e-13);
  training::GradientAccumulation three(3);
  CHECK_FALSE(three.sync());
  CHECK_FALSE(three.sync());
  CHECK(three.sync());
  CHECK_FALSE(three.sync());
  CHECK_THROWS_WITH(training::GradientAccumulation(0), Catch::Contains("at least 1"));
}

TEST_CASE("min-SNR-gamma weights") {
  // alphas_cumprod 0.8 -> SNR 4; 0.5 -> SNR 1; 0.9 -> SNR 9
  Tensor<float> ac({3}, {0.8f, 0.5f, 0.9f});
  Tensor<float> t({4}, {0, 1, 2, 2});
  auto snr = training::compute_snr(ac, t).to_vector();
  CHECK(snr[0] == Approx(4.0f));
  CHECK(snr[1] == Approx(1.0f));
  CHECK(snr[2] == Approx(9.0f));
  auto eps = training::min_snr_weights(ac, t, 5.0).to_vector();  // min(snr, 5) / snr
  CHECK(eps[0] == Approx(1.0f));
  CHECK(eps[1] == Approx(1.0f));
  CHECK(eps[2] == Approx(5.0f / 9.0f));
  auto v = training::min_snr_weights(ac, t, 5.0, "v_prediction").to_vector();  // min(snr, 5) / (snr + 1)
  CHECK(v[0] == Approx(4.0f / 5.0f));
  CHECK(v[1] == Approx(0.5f));
  CHECK(v[2] == Approx(0.5f));
  auto x0 = training::min_snr_weights(ac, t, 5.0, "sample").to_vector();
  CHECK(x0[2] == Approx(5.0f));
  CHECK_THROWS_WITH(training::min_snr_weights(ac, Tensor<float>({1}, {3.0f}), 5.0),
                    Catch::Contains("timestep 3"));
  CHECK_THROWS_WITH(training::min_snr_weights(ac, t, 5.0, "flow"), Catch::Contains("prediction_type 'flow'"));
}

TEST_CASE("optimizer state_dict round trip and refusal of a foreign state") {
  Tensor<float> p({2}, {1.0f, 2.0f});
  p.requires_grad_();
  optim::AdamW<float> a({p}, {.lr = 0.1});
  p.set_grad(Tensor<float>({2}, {0.5f, -1.0f}));
  a.step();
  auto s = a.state_dict();
  CHECK(s.tensors.count("0.exp_avg") == 1);
  CHECK(s.meta["steps"][0] == 1);

  Tensor<float> q({2}, {1.0f, 2.0f});
  q.requires_grad_();
  optim::AdamW<float> b({q}, {.lr = 0.5});
  b.load_state_dict(s);
  CHECK(b.lr() == Approx(0.1));
  CHECK(same_bits(b.exp_avg_sq(0), a.exp_avg_sq(0)));
  CHECK(b.param_step(0) == 1);

  optim::Adam<float> c({q});
  CHECK_THROWS_WITH(c.load_state_dict(s), Catch::Contains("AdamW optimizer, not Adam"));
  Tensor<float> r({3});
  r.requires_grad_();
  optim::AdamW<float> d({r});
  CHECK_THROWS_WITH(d.load_state_dict(s), Catch::Contains("shape"));
  auto broken = s;
  broken.tensors.erase("0.exp_avg_sq");
  CHECK_THROWS_WITH(b.load_state_dict(broken), Catch::Contains("'0.exp_avg_sq' is missing"));
}

TEST_CASE("ResumableLoader resumes mid-epoch with the same batches") {
  Generator data_gen(1);
  data::TensorDataset<float> ds(data_gen.randn<float>({7, 2}));
  auto order = [&](std::int64_t stop_after, std::optional<training::LoaderPosition> from,
                   std::optional<GeneratorState> gen_state, training::LoaderPosition* pos_out,
                   GeneratorState* gen_out) {
    Generator gen(3);
    data::DataLoader loader(ds, {.batch_size = 2, .shuffle = true}, gen);
    training::ResumableLoader epochs(loader, gen);
    if (from) {
      epochs.set_position(*from);
      gen.set_state(*gen_state);
    }
    std::vector<std::int64_t> seen;
    std::int64_t count = 0;
    while (epochs.epoch() < 3) {
      for (auto& batch : epochs) {
        seen.insert(seen.end(), batch.indices.begin(), batch.indices.end());
        gen.randn<float>({5});  // training draws in between
        if (++count == stop_after) {
          *pos_out = epochs.position();
          *gen_out = gen.state();
          return seen;
        }
      }
    }
    return seen;
  };
  training::LoaderPosition pos;
  GeneratorState gs;
  const auto all = order(-1, std::nullopt, std::nullopt, &pos, &gs);
  CHECK(all.size() == 21);
  for (std::int64_t stop : {1, 3, 4, 6, 9}) {
    auto first = order(stop, std::nullopt, std::nullopt, &pos, &gs);
    auto rest = order(-1, pos, gs, &pos, &gs);
    first.insert(first.end(), rest.begin(), rest.end());
    CHECK(first == all);
  }
  Generator gen(3);
  data::DataLoader other(ds, {.batch_size = 3, .shuffle = true}, gen);
  training::ResumableLoader e2(other, gen);
  CHECK_THROWS_WITH(e2.set_position({0, 1, 4, {}}), Catch::Contains("4 batches per epoch, this one has 3"));
}

TEST_CASE("checkpoints: training 2N steps equals N, stop, resume, N more, bit for bit") {
  const fs::path straight = temp_dir("straight"), split = temp_dir("split");
  const std::int64_t total = 10;
  const RunResult reference = train_run(straight, total, -1, false);
  CHECK(reference.global_step == total);
  // N = 5 stops in the middle of the second epoch (4 batches per epoch).
  train_run(split, total, 5, false);
  CHECK(fs::is_directory(split / "checkpoint-5"));
  const RunResult resumed = train_run(split, total, -1, true);
  require_same(resumed, reference);
  // and at an epoch boundary
  const fs::path boundary = temp_dir("boundary");
  train_run(boundary, total, 4, false);
  require_same(train_run(boundary, total, -1, true), reference);

  // the checkpoint folder's contents
  const io::json s = io::read_json(split / "checkpoint-5" / "trainer_state.json");
  CHECK(s["format"] == "diffuse-checkpoint");
  CHECK(s["version"] == 1);
  CHECK(s["global_step"] == 5);
  CHECK(s["data_loader"]["epoch"] == 1);
  CHECK(s["data_loader"]["batch"] == 1);
  CHECK(s["lr_scheduler"]["last_epoch"] == 5);
  CHECK(s["optimizer"]["param_groups"].size() == 2);
  CHECK(fs::exists(split / "checkpoint-5" / "ema.safetensors"));
  fs::remove_all(straight);
  fs::remove_all(split);
  fs::remove_all(boundary);
}

TEST_CASE("checkpoints: pruning, latest, interrupted saves") {
  CaptureWarnings quiet;  // the skipped and removed folders below are reported
  const fs::path dir = temp_dir("prune");
  const fs::path ref_dir = temp_dir("prune_ref");
  const RunResult reference = train_run(ref_dir, 6, -1, false);
  fs::remove_all(ref_dir);
  // a checkpoint after every step, keeping 2: the oldest go first
  const RunResult pruned = train_run(dir, 6, -1, false, 2);
  require_same(pruned, reference);
  std::vector<std::string> names;
  for (auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"checkpoint-5", "checkpoint-6"});

  training::CheckpointManager m(dir);
  REQUIRE(m.latest());
  CHECK(m.latest()->filename() == "checkpoint-6");
  // An interrupted save leaves a temporary folder and perhaps a half-written folder: both ignored.
  fs::create_directories(dir / "checkpoint-7.tmp-1234");
  std::ofstream(dir / "checkpoint-7.tmp-1234" / "model.safetensors") << "partial";
  fs::create_directories(dir / "checkpoint-8");
  std::ofstream(dir / "checkpoint-8" / "model.safetensors") << "partial";
  CHECK(m.latest()->filename() == "checkpoint-6");
  CHECK(m.list().size() == 2);
  // a newest checkpoint whose file was truncated afterwards is not "latest" either
  fs::copy(dir / "checkpoint-6", dir / "checkpoint-9", fs::copy_options::recursive);
  fs::resize_file(dir / "checkpoint-9" / "optimizer.safetensors", 100);
  CHECK(m.latest()->filename() == "checkpoint-6");
  // a re-save of step 6 stopped between moving the old folder aside and renaming the new one in:
  // the old folder is put back
  fs::rename(dir / "checkpoint-6", dir / "checkpoint-6.old-abcd");
  CHECK(m.latest()->filename() == "checkpoint-6");
  CHECK_FALSE(fs::exists(dir / "checkpoint-6.old-abcd"));
  // resolve("latest") names the folder resume("latest") loads, and says why it skips the newer ones
  CaptureWarnings::messages().clear();
  REQUIRE(m.resolve("latest"));
  CHECK(m.resolve("latest")->filename() == "checkpoint-6");
  CHECK_THAT(CaptureWarnings::messages().at(0),
             Catch::Contains("skipping '") && Catch::Contains("checkpoint-9"));
  CHECK(m.resolve("some/folder") == fs::path("some/folder"));
  // resuming from "latest" continues from step 6
  Generator init(7);
  Net net(init);
  training::TrainingState<float> st{.model = &net};
  REQUIRE(m.resume("latest", st));
  CHECK(st.global_step == 6);
  CHECK(same_bits(net.fc2->bias, reference.params.at("fc2.bias")));
  // a later save cleans the temporary folder
  m.save(st);
  CHECK_FALSE(fs::exists(dir / "checkpoint-7.tmp-1234"));
  const fs::path empty = temp_dir("empty");
  CHECK(training::CheckpointManager(empty).resume("latest", st) == false);
  fs::remove_all(empty);
  CHECK_THROWS_WITH(training::CheckpointManager(dir, {.checkpoints_total_limit = 0}),
                    Catch::Contains("at least 1"));
  CHECK_THROWS_WITH(training::CheckpointManager(dir).path_for(-5), Catch::Contains("non-negative, got -5"));
  fs::remove_all(dir);
}

TEST_CASE(
    "checkpoints: what a crash mid-save or mid-prune left is cleaned up, other tools' folders are not") {
  const fs::path dir = temp_dir("leftovers");
  train_run(dir, 4, 4, false);  // checkpoint-4
  const fs::path good = dir / "checkpoint-4";
  auto copy_as = [&](const std::string& name) {
    fs::copy(good, dir / name, fs::copy_options::recursive);
    return dir / name;
  };
  // An older version's prune killed midway: a real name, optimizer.safetensors already deleted.
  fs::remove(copy_as("checkpoint-1") / "optimizer.safetensors");
  // ... or killed after trainer_state.json went: only part of the files, no state.
  fs::remove(copy_as("checkpoint-2") / "trainer_state.json");
  // A newer incomplete one (e.g. a truncated copy) is skipped by "latest", with a warning saying why.
  fs::resize_file(copy_as("checkpoint-9") / "ema.safetensors", 10);
  // A prune of this version killed between its rename and its delete, and an unfinished save.
  fs::create_directories(dir / ".old-checkpoint-3-abcd");
  std::ofstream(dir / ".old-checkpoint-3-abcd" / "model.safetensors") << "partial";
  fs::create_directories(dir / "checkpoint-5.tmp-1234");
  // Not ours: another tool's checkpoint folder, and a newer format version of ours.
  fs::create_directories(dir / "checkpoint-6");
  std::ofstream(dir / "checkpoint-6" / "random_states_0.pkl") << "accelerate";
  const fs::path future = copy_as("checkpoint-7");
  {
    io::json s = io::read_json(future / "trainer_state.json");
    s["version"] = 99;
    s["files"]["model.safetensors"] = 1;
    io::write_json(future / "trainer_state.json", s);
  }

  training::CheckpointManager m(dir, {.checkpoints_total_limit = 2});
  CHECK(m.list() == std::vector<fs::path>{good});
  CHECK_FALSE(fs::exists(dir / ".old-checkpoint-3-abcd"));  // listing removes an unfinished prune

  Generator init(7);
  Net net(init);
  training::TrainingState<float> st{.model = &net};
  {
    CaptureWarnings warnings;
    REQUIRE(m.resume("latest", st));
    CHECK(st.global_step == 4);
    const auto& w = CaptureWarnings::messages();
    CHECK(std::any_of(w.begin(), w.end(), [](const std::string& s) {
      return s.find("checkpoint-9") != std::string::npos && s.find("ema.safetensors") != std::string::npos;
    }));
  }
  // The next save removes our incomplete folders, each with a warning, and the unfinished save.
  st.global_step = 8;
  {
    CaptureWarnings warnings;
    m.save(st);
    const auto& w = CaptureWarnings::messages();
    for (const char* name : {"checkpoint-1", "checkpoint-2", "checkpoint-9"})
      CHECK(std::any_of(w.begin(), w.end(),
                        [&](const std::string& s) { return s.find(name) != std::string::npos; }));
  }
  std::vector<std::string> names;
  for (auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"checkpoint-4", "checkpoint-6", "checkpoint-7", "checkpoint-8"});
  // Pruning to the limit leaves no broken or hidden folder behind.
  st.global_step = 10;
  m.save(st);
  names.clear();
  for (auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"checkpoint-10", "checkpoint-6", "checkpoint-7", "checkpoint-8"});
  fs::remove_all(dir);
}

TEST_CASE("checkpoints: truncated or foreign folders are refused with a clear error, nothing changes") {
  const fs::path dir = temp_dir("refuse");
  train_run(dir, 6, 3, false);
  const fs::path good = dir / "checkpoint-3";
  auto copy_of = [&](const std::string& name) {
    const fs::path p = dir / name;
    fs::copy(good, p, fs::copy_options::recursive);
    return p;
  };
  Generator init(7), gen(0);
  Net net(init);
  optim::AdamW<float> opt(optim::weight_decay_groups(net, 0.05), {.lr = 2e-2});
  auto sched = optim::get_scheduler("cosine", opt, {.num_warmup_steps = 2, .num_training_steps = 6});
  optim::EMAModel<float> ema(net);
  training::TrainingState<float> st{
      .model = &net, .optimizer = &opt, .lr_scheduler = &sched, .ema = &ema, .generators = {{"train", &gen}}};
  const Tensor<float> before = net.fc1->weight.clone();
  auto refused = [&](const fs::path& p, const std::string& what) {
    CHECK_THROWS_WITH(training::load_checkpoint(p, st), Catch::Contains(what));
    CHECK(same_bits(net.fc1->weight, before));
    CHECK(st.global_step == 0);
    CHECK(gen.state() == GeneratorState{0, 0});
  };

  fs::path p = copy_of("missing");
  fs::remove(p / "model.safetensors");
  refused(p, "missing file 'model.safetensors'");
  p = copy_of("no_state");
  fs::remove(p / "trainer_state.json");
  refused(p, "missing trainer_state.json");
  refused(dir / "nowhere", "no such folder");
  p = copy_of("foreign");
  {
    io::json s = io::read_json(p / "trainer_state.json");
    s["format"] = "accelerate";
    io::write_json(p / "trainer_state.json", s);
  }
  refused(p, "format 'accelerate' is not 'diffuse-checkpoint'");
  p = copy_of("future");
  {
    io::json s = io::read_json(p / "trainer_state.json");
    s["version"] = 99;
    io::write_json(p / "trainer_state.json", s);
  }
  refused(p, "unsupported format version 99");
  p = copy_of("future_wrapping");  // 2^32 + 1: read as an int, it used to wrap to version 1
  {
    io::json s = io::read_json(p / "trainer_state.json");
    s["version"] = 4294967297;
    io::write_json(p / "trainer_state.json", s);
  }
  refused(p, "unsupported format version 4294967297");
  p = copy_of("truncated");
  fs::resize_file(p / "model.safetensors", fs::file_size(p / "model.safetensors") - 7);
  refused(p, "'model.safetensors' is");
  p = copy_of("truncated_resized");  // truncated, with the recorded size edited to match
  {
    fs::resize_file(p / "ema.safetensors", fs::file_size(p / "ema.safetensors") - 8);
    io::json s = io::read_json(p / "trainer_state.json");
    s["files"]["ema.safetensors"] = fs::file_size(p / "ema.safetensors");
    io::write_json(p / "trainer_state.json", s);
  }
  refused(p, "ema.safetensors");
  p = copy_of("renamed");  // a model with other parameter names / shapes
  {
    auto t = io::load_safetensors<float>(p / "model.safetensors");
    t["fc3.weight"] = t.at("fc1.weight");
    t.erase("fc1.weight");
    t["fc2.bias"] = Tensor<float>({5});
    io::save_safetensors(p / "model.safetensors", t);
    io::json s = io::read_json(p / "trainer_state.json");
    s["files"]["model.safetensors"] = fs::file_size(p / "model.safetensors");
    io::write_json(p / "trainer_state.json", s);
  }
  CHECK_THROWS_WITH(training::load_checkpoint(p, st), Catch::Contains("missing fc1.weight") &&
                                                          Catch::Contains("shape mismatch fc2.bias") &&
                                                          Catch::Contains("unexpected fc3.weight"));
  CHECK(same_bits(net.fc1->weight, before));
  // a different schedule: refused after the model was already restored, which is then put back
  auto linear = optim::get_scheduler("linear", opt, {.num_warmup_steps = 2, .num_training_steps = 6});
  training::TrainingState<float> st2{.model = &net, .optimizer = &opt, .lr_scheduler = &linear};
  CHECK_THROWS_WITH(training::load_checkpoint(good, st2), Catch::Contains("schedule 'cosine'"));
  CHECK(same_bits(net.fc1->weight, before));
  // a different optimizer type
  optim::Adam<float> adam(optim::weight_decay_groups(net, 0.05));
  training::TrainingState<float> st3{.model = &net, .optimizer = &adam};
  CHECK_THROWS_WITH(training::load_checkpoint(good, st3), Catch::Contains("not Adam"));
  CHECK(same_bits(net.fc1->weight, before));
  // a generator the checkpoint does not have
  Generator other;
  training::TrainingState<float> st4{.model = &net, .generators = {{"other", &other}}};
  CHECK_THROWS_WITH(training::load_checkpoint(good, st4), Catch::Contains("generator 'other'"));
  // and the good one loads
  training::load_checkpoint(good, st);
  CHECK(st.global_step == 3);
  CHECK_FALSE(same_bits(net.fc1->weight, before));
  fs::remove_all(dir);
}

TEST_CASE(
    "checkpoints: counts and seeds that are not integers in range are refused, not converted (issue 11)") {
  // Found by tests/fuzz/fuzz_checkpoint: get<std::int64_t>() of 1e300 or NaN is undefined behaviour.
  const fs::path dir = temp_dir("numbers");
  train_run(dir, 6, 3, false);
  const fs::path good = dir / "checkpoint-3";
  Generator init(7), gen(0), data_gen(11);
  Net net(init);
  optim::AdamW<float> opt(optim::weight_decay_groups(net, 0.05), {.lr = 2e-2});
  auto sched = optim::get_scheduler("cosine", opt, {.num_warmup_steps = 2, .num_training_steps = 6});
  optim::EMAModel<float> ema(net);
  const Tensor<float> samples = data_gen.randn<float>({10, 4});
  data::TensorDataset<float> dataset(samples);
  data::DataLoader loader(dataset, {.batch_size = 3, .shuffle = true}, gen);
  training::ResumableLoader epochs(loader, gen);
  training::TrainingState<float> st{.model = &net,
                                    .optimizer = &opt,
                                    .lr_scheduler = &sched,
                                    .ema = &ema,
                                    .generators = {{"train", &gen}},
                                    .data_loader = &epochs};
  const Tensor<float> before = net.fc1->weight.clone();
  int n = 0;
  auto refused = [&](const std::string& pointer, const std::string& value, const std::string& what) {
    const fs::path p = dir / ("edited" + std::to_string(n++));
    fs::copy(good, p, fs::copy_options::recursive);
    io::json s = io::read_json(p / "trainer_state.json");
    s[io::json::json_pointer(pointer)] = io::parse_json(value);
    io::write_json(p / "trainer_state.json", s);
    INFO(pointer << " = " << value);
    CHECK_THROWS_WITH(training::load_checkpoint(p, st), Catch::Contains(what));
    CHECK(same_bits(net.fc1->weight, before));
    CHECK(st.global_step == 0);
  };
  refused("/global_step", "1e300", "global_step must be an integer, got 1e+300");
  refused("/epoch", "NaN", "epoch must be an integer");
  refused("/generators/train/seed", "NaN", "generator 'train' seed must be an integer");
  refused("/generators/train/offset", "-1", "generator 'train' offset is out of range");
  refused("/data_loader/batch", "1e300", "data-loader batch must be an integer");
  refused("/data_loader/epoch_start_generator/seed", "Infinity",
          "data-loader generator seed must be an integer");
  refused("/lr_scheduler/last_epoch", "-1e300", "last_epoch must be an integer");
  refused("/ema/optimization_step", "18446744073709551615", "optimization_step is out of range");
  refused("/ema/update_after_step", "0.5", "update_after_step must be an integer");
  refused("/optimizer/param_groups/0/num_params", "-2", "num_params is out of range");
  refused("/optimizer/steps/0", "1e300", "a step count must be an integer");
  training::load_checkpoint(good, st);
  CHECK(st.global_step == 3);
  fs::remove_all(dir);
}

TEST_CASE("SampleStreams: a sample's draws depend on its key, not on how the batch is split") {
  const training::SampleStreams streams(11);
  const Shape shape{8, 1, 6, 6};
  const auto whole = streams.draw<float>(shape, 1000, 3, 1, {0, 1, 2, 3, 4, 5, 6, 7});
  // Two ranks with batches of 4 hold the samples at positions r, r + 2, ... of the global batch.
  for (int r = 0; r < 2; ++r) {
    const auto part = streams.draw<float>({4, 1, 6, 6}, 1000, 3, 1, data::global_batch_positions(4, 2, r));
    for (std::int64_t i = 0; i < 4; ++i) {
      const std::int64_t p = r + 2 * i;
      CHECK(part.timesteps[i] == whole.timesteps[p]);
      CHECK(part.uniforms[i] == whole.uniforms[p]);
      CHECK(std::equal(part.noise.data() + i * 36, part.noise.data() + (i + 1) * 36,
                       whole.noise.data() + p * 36));
    }
  }
  // Another step, micro-batch or seed draws other values.
  auto first_value = [&](const training::SampleStreams& s, std::int64_t step, std::int64_t micro) {
    return s.draw<float>(shape, 1000, step, micro, {0, 1, 2, 3, 4, 5, 6, 7}).noise.data()[0];
  };
  CHECK(first_value(streams, 4, 1) != whole.noise.data()[0]);
  CHECK(first_value(streams, 3, 0) != whole.noise.data()[0]);
  CHECK(first_value(training::SampleStreams(12), 3, 1) != whole.noise.data()[0]);
  CHECK(first_value(streams, 3, 1) == whole.noise.data()[0]);  // no state: the same key, the same values
  // Standard normal noise and uniform timesteps over many samples.
  std::vector<std::int64_t> positions(512);
  std::iota(positions.begin(), positions.end(), 0);
  const auto many = streams.draw<double>({512, 1, 6, 6}, 1000, 0, 0, positions);
  double sum = 0, squares = 0;
  for (double v : many.noise) sum += v, squares += v * v;
  const double n = static_cast<double>(many.noise.numel());
  CHECK(std::abs(sum / n) < 0.02);          // 4 standard errors of the mean
  CHECK(std::abs(squares / n - 1) < 0.04);  // ~5 standard errors of the variance
  const double mean_t = std::accumulate(many.timesteps.begin(), many.timesteps.end(), 0.0) / 512;
  CHECK(std::abs(mean_t - 499.5) < 4 * 288.7 / std::sqrt(512.0));
  CHECK(*std::min_element(many.timesteps.begin(), many.timesteps.end()) >= 0);
  CHECK(*std::max_element(many.timesteps.begin(), many.timesteps.end()) < 1000);
  const double mean_u = std::accumulate(many.uniforms.begin(), many.uniforms.end(), 0.0) / 512;
  CHECK(std::abs(mean_u - 0.5) < 4 * 0.2887 / std::sqrt(512.0));
  CHECK(std::count_if(many.uniforms.begin(), many.uniforms.end(), [](double u) { return u < 0.1; }) > 30);
  // Bad requests.
  CHECK_THROWS_WITH(streams.draw<float>(shape, 1000, 0, 0, {0, 1}),
                    Catch::Contains("2 positions for a batch of 8"));
  CHECK_THROWS_WITH(streams.draw<float>(shape, 0, 0, 0, {0, 1, 2, 3, 4, 5, 6, 7}),
                    Catch::Contains("num_train_timesteps must be at least 1"));
  CHECK_THROWS_WITH(streams.draw<float>({}, 1000, 0, 0, {}), Catch::Contains("batch dimension"));
}

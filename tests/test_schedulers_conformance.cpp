// Conformance of the schedulers with diffusers 0.21: every scheduler case listed in the
// fixtures' manifest.json (read generically; no case names here) is replayed in float and in
// double: timesteps, init_noise_sigma, alphas_cumprod, each step fed diffusers' own sample
// (step by step), the freely running trajectory, and add_noise / get_velocity where present.
// The folder is $DIFFUSE_DIFFUSERS_FIXTURES, else DIFFUSE_FIXTURES_DEFAULT.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>

#include "diffuse/io/atomic_file.hpp"
#include "diffuse/io/safetensors.hpp"
#include "diffuse/schedulers/factory.hpp"
#include "fixtures.hpp"

using namespace diffuse;
namespace fs = std::filesystem;
using schedulers::json;

namespace {

// The stand-in model of the fixtures' README: tanh(x) * 0.5 + 0.25 * x * cos(t / 300), where
// t / 300 and the cosine are float32 as PyTorch evaluates them on a timestep tensor.
template <class T>
Tensor<T> model(const Tensor<T>& x, double t) {
  const double c = std::cos(static_cast<float>(t) / 300.0f);
  Tensor<T> out = Tensor<T>::empty(x.shape());
  for (std::int64_t i = 0; i < x.numel(); ++i) {
    const double v = x.data()[i];
    out.data()[i] = static_cast<T>(std::tanh(v) * 0.5 + 0.25 * v * c);
  }
  return out;
}

// Row i of a tensor along its first axis, converted to T.
template <class T>
Tensor<T> row(const Tensor<double>& t, std::int64_t i) {
  Shape s(t.shape().begin() + 1, t.shape().end());
  const std::int64_t per = numel_of(s);
  REQUIRE(i < t.size(0));
  Tensor<T> out = Tensor<T>::empty(s);
  for (std::int64_t k = 0; k < per; ++k) out.data()[k] = static_cast<T>(t.data()[i * per + k]);
  return out;
}

double max_abs(const Tensor<double>& t) {
  double m = 0;
  for (double v : t) m = std::max(m, std::abs(v));
  return m;
}

// max|a - ref| / max(1, max|ref|)
template <class T>
double rel_err(const Tensor<T>& a, const Tensor<double>& ref) {
  REQUIRE(a.shape() == ref.shape());
  double m = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i) {
    const double d = std::abs(static_cast<double>(a.data()[i]) - ref.data()[i]);
    m = std::max(m, std::isnan(d) ? INFINITY : d);
  }
  return m / std::max(1.0, max_abs(ref));
}

template <class T>
std::unique_ptr<schedulers::Scheduler<T>> build(const json& c) {
  auto s = schedulers::make_scheduler<T>(c.at("class").get<std::string>(), c.at("config"));
  if (c.contains("step_kwargs")) s->set_step_kwargs(c["step_kwargs"]);
  s->set_timesteps(c.at("num_inference_steps").get<std::int64_t>());
  return s;
}

template <class T>
void run_case(const json& c, const std::map<std::string, Tensor<double>>& f) {
  const std::string name = c.value("name", c.at("file").get<std::string>());
  const char* type = std::is_same_v<T, float> ? "float" : "double";
  INFO("case " << name << " (" << c.at("class").get<std::string>() << ") in " << type);
  const Tensor<double>& ref_ts = f.at("timesteps");
  const Tensor<double>& traj = f.at("trajectory");
  const Tensor<double>& noise = f.at("noise");

  // the schedule
  auto sched = build<T>(c);
  REQUIRE(static_cast<std::int64_t>(sched->timesteps().size()) == ref_ts.numel());
  for (std::int64_t i = 0; i < ref_ts.numel(); ++i) {
    INFO("timestep " << i);
    CHECK(sched->timesteps()[i] == ref_ts.data()[i]);
  }
  const double sigma0 = f.at("init_noise_sigma").data()[0];
  CHECK(sched->init_noise_sigma() == Approx(sigma0).epsilon(1e-6));
  if (f.count("alphas_cumprod")) {
    const Tensor<T> ac = sched->alphas_cumprod();
    REQUIRE(ac.numel() == f.at("alphas_cumprod").numel());
    CHECK(rel_err(ac, f.at("alphas_cumprod")) <= 5e-7);  // a few float32 ulps
  }

  // step by step: feed diffusers' sample, let the scheduler's own history advance
  double worst_step = 0;
  const auto& ts = sched->timesteps();
  for (std::size_t i = 0; i < ts.size(); ++i) {
    const Tensor<T> x = row<T>(traj, static_cast<std::int64_t>(i));
    const Tensor<T> out = sched
                              ->step(model(sched->scale_model_input(x, ts[i]), ts[i]), ts[i], x,
                                     row<T>(noise, static_cast<std::int64_t>(i)))
                              .prev_sample;
    const double e = rel_err(out, row<double>(traj, static_cast<std::int64_t>(i) + 1));
    worst_step = std::max(worst_step, e);
    INFO("step " << i << " at timestep " << ts[i]);
    CHECK(e <= 3e-4);
  }

  // freely running from the initial noise
  auto free = build<T>(c);
  const Tensor<double>& init = f.at("init");
  Tensor<T> x = Tensor<T>::empty(init.shape());
  for (std::int64_t k = 0; k < init.numel(); ++k)
    x.data()[k] = static_cast<T>(init.data()[k] * free->init_noise_sigma());
  for (std::size_t i = 0; i < free->timesteps().size(); ++i) {
    const double t = free->timesteps()[i];
    x = free->step(model(free->scale_model_input(x, t), t), t, x, row<T>(noise, static_cast<std::int64_t>(i)))
            .prev_sample;
  }
  const double final_err = rel_err(x, row<double>(traj, traj.size(0) - 1));
  CHECK(final_err <= 1e-3);

  // forward process and velocity target
  double worst_fwd = 0;
  if (f.count("add_noise.out")) {
    const auto to_T = [](const Tensor<double>& t) { return t.to<T>(); };
    const Tensor<T> x0 = to_T(f.at("add_noise.x0")), n = to_T(f.at("add_noise.noise"));
    const Tensor<T> t = to_T(f.at("add_noise.t"));
    const double e = rel_err(sched->add_noise(x0, n, t), f.at("add_noise.out"));
    worst_fwd = std::max(worst_fwd, e);
    CHECK(e <= 1e-5);
    if (f.count("get_velocity.out")) {
      const double ev = rel_err(sched->get_velocity(x0, n, t), f.at("get_velocity.out"));
      worst_fwd = std::max(worst_fwd, ev);
      CHECK(ev <= 1e-5);
    }
  }
  std::printf("%-32s %-6s steps %4zu  worst step err %.2e  final err %.2e  add_noise/velocity err %.2e\n",
              name.c_str(), type, ts.size(), worst_step, final_err, worst_fwd);
}

}  // namespace

TEST_CASE("schedulers match diffusers 0.21 on every scheduler case of the manifest") {
  const fs::path dir = testing::fixtures_dir();
  const json manifest = testing::read_manifest();
  if (!manifest.contains("schedulers") || manifest["schedulers"].empty()) {
    SUCCEED("no scheduler cases in the manifest");
    return;
  }
  for (const json& c : manifest["schedulers"]) {
    const auto tensors = io::load_safetensors<double>(dir / c.at("file").get<std::string>());
    run_case<double>(c, tensors);
    run_case<float>(c, tensors);
  }
}

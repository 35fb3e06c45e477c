// Scheduler unit tests: config JSON round trips, from_config between schedulers, error messages,
// beta schedules against closed forms, Karras sigmas, timestep spacings and properties of
// add_noise, get_velocity and step.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <numbers>

#include "capture_warnings.hpp"
#include "diffuse/schedulers/factory.hpp"
#include "temp_dir.hpp"

using namespace diffuse;
using namespace diffuse::schedulers;
using Catch::Matchers::Contains;

namespace {
std::vector<double> ints(std::initializer_list<int> v) { return std::vector<double>(v.begin(), v.end()); }
double sigmoid(double x) { return 1 / (1 + std::exp(-x)); }
double alpha_bar_cos(double t) {
  const double c = std::cos((t + 0.008) / 1.008 * std::numbers::pi / 2);
  return c * c;
}
}  // namespace

TEST_CASE("every scheduler's config survives a JSON round trip") {
  for (const auto& name : scheduler_names()) {
    INFO(name);
    auto s = make_scheduler<float>(name, json::object());
    const json j = s->to_json();
    CHECK(j.at("_class_name") == name);
    CHECK(j.contains("num_train_timesteps"));
    auto back = make_scheduler<double>(io::parse_json(io::dump_json(j)));
    CHECK(back->class_name() == name);
    CHECK(back->to_json() == j);
  }
}

TEST_CASE("non-default values round-trip and reach the schedule") {
  DDPMScheduler<float>::Config c;
  c.num_train_timesteps = 200;
  c.beta_schedule = "squaredcos_cap_v2";
  c.variance_type = "fixed_large";
  c.prediction_type = "v_prediction";
  c.clip_sample = false;
  c.timestep_spacing = "trailing";
  DDPMScheduler<float> s(c);
  auto r = DDPMScheduler<float>::from_config(io::parse_json(io::dump_json(s.to_json())));
  CHECK(r.config().num_train_timesteps == 200);
  CHECK(r.config().beta_schedule == "squaredcos_cap_v2");
  CHECK(r.config().variance_type == "fixed_large");
  CHECK(r.config().prediction_type == "v_prediction");
  CHECK_FALSE(r.config().clip_sample);
  CHECK(r.config().timestep_spacing == "trailing");
  CHECK(r.alphas_cumprod().numel() == 200);

  // trained_betas: null when absent, a list when given
  CHECK(s.to_json()["trained_betas"].is_null());
  c.trained_betas = std::vector<double>(200, 0.01);
  DDPMScheduler<float> tb(c);
  CHECK(tb.to_json()["trained_betas"].size() == 200);
  CHECK(tb.betas().data()[7] == Approx(0.01f));
}

TEST_CASE("DPM-Solver's -Infinity is written and read as Python's json does") {
  DPMSolverMultistepScheduler<float> s;
  const std::string text = io::dump_json(s.to_json());
  CHECK_THAT(text, Contains("\"lambda_min_clipped\": -Infinity"));
  CHECK_THAT(text, Contains("\"variance_type\": null"));
  const json j = io::parse_json(text);
  CHECK(std::isinf(j["lambda_min_clipped"].get<double>()));
  CHECK(j["lambda_min_clipped"].get<double>() < 0);
  // a string containing the word is left alone
  CHECK(io::parse_json(R"({"a": "NaN and Infinity"})")["a"] == "NaN and Infinity");
  CHECK_THROWS_AS(io::parse_json("{not json"), Error);
}

TEST_CASE("scheduler configs save to and load from a folder") {
  const auto dir = std::filesystem::temp_directory_path() / "diffuse_test_scheduler_config";
  std::filesystem::remove_all(dir);
  UniPCMultistepScheduler<float>::Config c;
  c.solver_order = 3;
  c.solver_type = "bh1";
  save_scheduler(UniPCMultistepScheduler<float>(c), dir);
  auto s = load_scheduler<float>(dir);
  CHECK(s->class_name() == "UniPCMultistepScheduler");
  CHECK(s->to_json()["solver_order"] == 3);
  CHECK(s->to_json()["solver_type"] == "bh1");
  // A bad value names the file it came from.
  io::write_json(dir / "scheduler_config.json", json{{"_class_name", "DDIMScheduler"}, {"beta_end", 2.0}});
  CHECK_THROWS_WITH(load_scheduler<float>(dir),
                    Contains((dir / "scheduler_config.json").string()) && Contains("beta_end 2"));
  std::filesystem::remove_all(dir);
  CHECK_THROWS_AS(load_scheduler<float>(dir), Error);
}

TEST_CASE("from_config between schedulers follows diffusers") {
  // A DDPM config as diffusers writes it: keys the user left at their defaults are listed in
  // _use_default_values, so another class takes its own defaults for them.
  json ddpm = DDPMScheduler<float>({.num_train_timesteps = 1000,
                                    .beta_start = 0.00085,
                                    .beta_end = 0.012,
                                    .beta_schedule = "scaled_linear"})
                  .to_json();
  ddpm["_use_default_values"] = {"timestep_spacing", "steps_offset"};
  auto euler = EulerDiscreteScheduler<float>::from_config(ddpm);
  CHECK(euler.config().beta_schedule == "scaled_linear");
  CHECK(euler.config().beta_start == 0.00085);
  CHECK(euler.config().timestep_spacing == "linspace");  // Euler's default, not DDPM's "leading"
  // DDPM-only keys (variance_type, clip_sample, ...) are ignored
  CHECK_FALSE(euler.to_json().contains("variance_type"));
  CHECK(euler.to_json()["_class_name"] == "EulerDiscreteScheduler");
  // ... unless the value was set explicitly
  ddpm["_use_default_values"] = json::array();
  CHECK(EulerDiscreteScheduler<float>::from_config(ddpm).config().timestep_spacing == "leading");

  // the factory with an explicit class converts, the same schedule results
  auto dpm = make_scheduler<double>("DPMSolverMultistepScheduler", ddpm);
  CHECK(dpm->alphas_cumprod().data()[500] == Approx(euler.alphas_cumprod().data()[500]).epsilon(1e-7));
  // keys of other schedulers pass quietly; others are ignored with a warning (as diffusers does)
  {
    CaptureWarnings w;
    CHECK_NOTHROW(DDIMScheduler<float>::from_config(ddpm));
    CHECK_NOTHROW(DDIMScheduler<float>::from_config({{"use_karras_sigmas", true}, {"solver_order", 2}}));
    CHECK(w.messages().empty());
    CHECK_NOTHROW(DDIMScheduler<float>::from_config({{"some_future_key", 3}, {"eta", 0.5}}));
    REQUIRE(w.messages().size() == 1);
    CHECK_THAT(w.messages()[0], Contains("\"some_future_key\": 3") && Contains("\"eta\": 0.5") &&
                                    Contains("DDIMScheduler") && Contains("will be ignored"));
  }
  // deis and bh2 are mapped onto DPM-Solver's own names like diffusers does
  auto mapped =
      DPMSolverMultistepScheduler<float>::from_config({{"algorithm_type", "deis"}, {"solver_type", "bh2"}});
  CHECK(mapped.config().algorithm_type == "dpmsolver++");
  CHECK(mapped.config().solver_type == "midpoint");
}

TEST_CASE("unknown names and values throw diffuse::Error listing what is accepted") {
  CHECK_THROWS_WITH(
      make_scheduler<float>("LMSDiscreteScheduler", json::object()),
      Contains("LMSDiscreteScheduler") && Contains("DDPMScheduler") && Contains("UniPCMultistepScheduler"));
  CHECK_THROWS_WITH(make_scheduler<float>(json{{"num_train_timesteps", 10}}), Contains("_class_name"));
  CHECK_THROWS_WITH(DDPMScheduler<float>({.beta_schedule = "cubic"}),
                    Contains("beta_schedule") && Contains("cubic") && Contains("'sigmoid'") &&
                        Contains("'squaredcos_cap_v2'"));
  CHECK_THROWS_WITH(DDPMScheduler<float>({.variance_type = "big"}),
                    Contains("variance_type") && Contains("learned_range"));
  CHECK_THROWS_WITH(DDIMScheduler<float>({.prediction_type = "noise"}),
                    Contains("prediction_type") && Contains("v_prediction"));
  CHECK_THROWS_WITH(DDIMScheduler<float>({.timestep_spacing = "uniform"}), Contains("trailing"));
  CHECK_THROWS_WITH(DPMSolverMultistepScheduler<float>::from_config({{"algorithm_type", "dpm3"}}),
                    Contains("algorithm_type") && Contains("sde-dpmsolver++"));
  CHECK_THROWS_WITH(DPMSolverMultistepScheduler<float>::from_config({{"solver_type", "rk4"}}),
                    Contains("heun"));
  CHECK_THROWS_WITH(UniPCMultistepScheduler<float>::from_config({{"solver_type", "bh3"}}), Contains("bh1"));
  CHECK_THROWS_WITH(EulerDiscreteScheduler<float>::from_config({{"interpolation_type", "cubic"}}),
                    Contains("log_linear"));
  CHECK_THROWS_WITH(EulerAncestralDiscreteScheduler<float>({.prediction_type = "sample"}),
                    Contains("prediction_type"));
  CHECK_THROWS_WITH(DDPMScheduler<float>::from_config({{"num_train_timesteps", "many"}}),
                    Contains("num_train_timesteps") && Contains("integer"));
  CHECK_THROWS_WITH(DDPMScheduler<float>::from_config({{"clip_sample", 1}}), Contains("clip_sample"));
  CHECK_THROWS_WITH(DDPMScheduler<float>({.trained_betas = {0.1, 0.2}}), Contains("trained_betas"));
  CHECK_THROWS_WITH(
      UniPCMultistepScheduler<float>::from_config({{"solver_p", {{"_class_name", "DDIMScheduler"}}}}),
      Contains("solver_p"));
  DDIMScheduler<float> ddim;
  CHECK_THROWS_WITH(ddim.set_step_kwargs({{"etta", 1.0}}), Contains("etta") && Contains("eta"));
  CHECK_THROWS_WITH(DDPMScheduler<float>().set_step_kwargs({{"eta", 1.0}}), Contains("eta"));
}

TEST_CASE(
    "a second loop without set_timesteps starts like a fresh one, reading no timestep before the first") {
  // DPM-Solver's multistep updates read timesteps[idx - 1] and [idx - 2]; its history from the first
  // loop made the first step of the second read timesteps[-1] and [-2].
  for (int order : {2, 3}) {
    INFO("solver_order " << order);
    Generator gen(3);
    const auto x = gen.randn<float>({1, 1, 4, 4});
    DPMSolverMultistepScheduler<float> used({.solver_order = order}), fresh({.solver_order = order});
    used.set_timesteps(5);
    fresh.set_timesteps(5);
    for (double t : used.timesteps()) (void)used.step(x, t, x);
    const double first = used.timesteps().front();
    const auto again = used.step(x, first, x).prev_sample, once = fresh.step(x, first, x).prev_sample;
    CHECK(std::equal(again.data(), again.data() + again.numel(), once.data()));
  }
}

TEST_CASE("bad step input throws naming it") {
  DDPMScheduler<float> s;
  s.set_timesteps(10);
  Generator gen(0);
  const auto x = gen.randn<float>({2, 3, 4, 4});
  CHECK_THROWS_WITH(s.step(x, 1000, x, gen), Contains("1000"));
  CHECK_THROWS_WITH(s.step(x, -1, x, gen), Contains("-1"));
  CHECK_THROWS_WITH(s.step(x, 12.5, x, gen), Contains("12.5"));
  CHECK_THROWS_WITH(s.step(gen.randn<float>({2, 3, 4, 5}), 900, x, gen), Contains("[2, 3, 4, 5]"));
  CHECK_THROWS_WITH(s.step(x, 900, x, gen.randn<float>({1, 3})), Contains("noise"));
  CHECK_THROWS_WITH(s.step(x, 900, x), Contains("stochastic"));  // needs noise
  CHECK_NOTHROW(s.step(x, 0, x));                                // the last step draws none
  CHECK_THROWS_WITH(s.set_timesteps(1001), Contains("1001"));
  CHECK_THROWS_WITH(s.add_noise(x, x, std::vector<std::int64_t>{1}), Contains("one per batch element"));
  CHECK_THROWS_WITH(s.add_noise(x, x, std::vector<std::int64_t>{1, 1000}), Contains("1000"));
  CHECK_THROWS_WITH(DPMSolverMultistepScheduler<float>().step(x, 999, x), Contains("set_timesteps"));
  DDIMScheduler<float> ddim({}, {.eta = -0.5});
  ddim.set_timesteps(10);
  CHECK_THROWS_WITH(ddim.step(x, 900, x), Contains("eta must be non-negative, got -0.5"));
  EulerDiscreteScheduler<float> e;
  e.set_timesteps(10);
  CHECK_THROWS_WITH(e.scale_model_input(x, 500), Contains("500"));
}

TEST_CASE("beta schedules match their closed forms") {
  const int N = 1000;
  SECTION("linear") {
    auto b = DDPMScheduler<double>().betas();
    CHECK(b.data()[0] == Approx(1e-4).epsilon(1e-6));
    CHECK(b.data()[N - 1] == Approx(0.02).epsilon(1e-6));
    CHECK(b.data()[500] == Approx(1e-4 + 500 * (0.02 - 1e-4) / 999).epsilon(1e-6));
  }
  SECTION("scaled_linear") {
    auto b =
        DDPMScheduler<double>({.beta_start = 0.00085, .beta_end = 0.012, .beta_schedule = "scaled_linear"})
            .betas();
    const double a = std::sqrt(0.00085), z = std::sqrt(0.012);
    for (int i : {0, 250, 999})
      CHECK(b.data()[i] == Approx(std::pow(a + i * (z - a) / 999, 2)).epsilon(1e-6));
  }
  SECTION("squaredcos_cap_v2") {
    auto b = DDPMScheduler<double>({.beta_schedule = "squaredcos_cap_v2"}).betas();
    for (int i : {0, 1, 500, 998})
      CHECK(b.data()[i] ==
            Approx(1 - alpha_bar_cos((i + 1.0) / N) / alpha_bar_cos(double(i) / N)).epsilon(1e-6));
    CHECK(b.data()[N - 1] == Approx(0.999).epsilon(1e-6));  // capped
  }
  SECTION("sigmoid") {
    auto b = DDPMScheduler<double>({.beta_schedule = "sigmoid"}).betas();
    for (int i : {0, 300, 999})
      CHECK(b.data()[i] == Approx(sigmoid(-6 + 12.0 * i / 999) * (0.02 - 1e-4) + 1e-4).epsilon(1e-5));
    CHECK(b.data()[0] == Approx(1.49205e-4).epsilon(1e-4));
  }
  SECTION("exp (Heun)") {
    auto b = HeunDiscreteScheduler<double>({.beta_schedule = "exp"}).betas();
    CHECK(b.data()[10] == Approx(1 - std::exp(-12.0 / N)).epsilon(1e-5));
  }
  SECTION("alphas_cumprod is the running product") {
    DDPMScheduler<double> s;
    auto b = s.betas(), ac = s.alphas_cumprod();
    double p = 1;
    for (int i = 0; i < N; ++i) p *= 1 - b.data()[i];
    CHECK(ac.data()[N - 1] == Approx(p).epsilon(1e-5));
  }
  SECTION("rescale_betas_zero_snr gives zero terminal SNR and keeps the first alpha") {
    DDIMScheduler<double> plain, rescaled({.rescale_betas_zero_snr = true});
    CHECK(rescaled.alphas_cumprod().data()[N - 1] == Approx(0).margin(1e-12));
    CHECK(rescaled.alphas_cumprod().data()[0] == Approx(plain.alphas_cumprod().data()[0]).epsilon(1e-6));
  }
}

TEST_CASE("timestep spacings") {
  DDPMScheduler<float> leading;
  leading.set_timesteps(10);
  CHECK(leading.timesteps() == ints({900, 800, 700, 600, 500, 400, 300, 200, 100, 0}));
  DDIMScheduler<float> offset({.steps_offset = 1});
  offset.set_timesteps(10);
  CHECK(offset.timesteps() == ints({901, 801, 701, 601, 501, 401, 301, 201, 101, 1}));
  DDIMScheduler<float> trailing({.timestep_spacing = "trailing"});
  trailing.set_timesteps(10);
  CHECK(trailing.timesteps() == ints({999, 899, 799, 699, 599, 499, 399, 299, 199, 99}));
  DDIMScheduler<float> lin({.timestep_spacing = "linspace"});
  lin.set_timesteps(4);
  CHECK(lin.timesteps() == ints({999, 666, 333, 0}));
  EulerDiscreteScheduler<float> euler;
  euler.set_timesteps(4);
  CHECK(euler.timesteps() == ints({999, 666, 333, 0}));
  CHECK(euler.init_noise_sigma() == Approx(euler.sigmas().data()[0]));
  CHECK(euler.sigmas().numel() == 5);
  CHECK(euler.sigmas().data()[4] == 0);
  HeunDiscreteScheduler<float> heun;
  heun.set_timesteps(3);
  CHECK(heun.order() == 2);
  CHECK(heun.timesteps() == std::vector<double>{999, 499.5, 499.5, 0, 0});
  CHECK(heun.sigmas().numel() == 6);
  PNDMScheduler<float> prk;
  prk.set_timesteps(20);
  CHECK(prk.timesteps().size() == 12 + 17);
  DPMSolverMultistepScheduler<float> dpm;
  dpm.set_timesteps(20);
  CHECK(dpm.timesteps().size() == 20);
  CHECK(dpm.timesteps().front() == 999);
  CHECK(std::is_sorted(dpm.timesteps().rbegin(), dpm.timesteps().rend()));
}

TEST_CASE("Karras sigmas") {
  const int n = 12;
  EulerDiscreteScheduler<double> plain, karras({.use_karras_sigmas = true});
  plain.set_timesteps(n);
  karras.set_timesteps(n);
  auto sp = plain.sigmas(), sk = karras.sigmas();
  REQUIRE(sk.numel() == n + 1);
  // same end points, evenly spaced in sigma^(1/7), decreasing, then 0
  CHECK(sk.data()[0] == Approx(sp.data()[0]).epsilon(1e-6));
  CHECK(sk.data()[n - 1] == Approx(sp.data()[n - 1]).epsilon(1e-6));
  CHECK(sk.data()[n] == 0);
  const double step = std::pow(sk.data()[1], 1 / 7.0) - std::pow(sk.data()[0], 1 / 7.0);
  for (int i = 1; i < n; ++i)
    CHECK(std::pow(sk.data()[i], 1 / 7.0) - std::pow(sk.data()[i - 1], 1 / 7.0) ==
          Approx(step).epsilon(1e-4));
  // the timesteps are those of the Karras levels: fractional, decreasing, within the training range
  CHECK(karras.timesteps().front() == Approx(999).margin(1e-3));
  CHECK(std::is_sorted(karras.timesteps().rbegin(), karras.timesteps().rend()));
  CHECK(karras.timesteps().back() >= 0);
  // DPM-Solver with Karras sigmas: integer timesteps, no repeats
  DPMSolverMultistepScheduler<float> dpm({.use_karras_sigmas = true});
  dpm.set_timesteps(20);
  for (double t : dpm.timesteps()) CHECK(t == std::round(t));
}

TEST_CASE("Karras timesteps of Euler and Heun are diffusers' (float32 log-sigmas, NumPy's casting)") {
  // tests/reference/karras_timesteps.py: diffusers 0.21's set_timesteps written out in NumPy.
  const std::vector<double> sd_betas = {
      999.000000000000, 913.147204369307, 811.944699168205, 689.368458449841, 537.353491485119,
      353.689981162548, 171.466441154480, 53.046108633280,  8.657402932644,   0.000000000000};
  const std::vector<double> ddpm_betas = {
      999.000000000000, 936.922128260136, 863.829667031765, 775.134303450584, 662.638871312141,
      510.707016050816, 300.990254461765, 102.165226504207, 18.309189736843,  0.000000000000};
  HeunDiscreteScheduler<double> heun({.use_karras_sigmas = true});  // betas 0.00085 .. 0.012
  heun.set_timesteps(10);
  EulerDiscreteScheduler<double> euler({.beta_start = 0.0001, .beta_end = 0.02, .use_karras_sigmas = true});
  euler.set_timesteps(10);
  // Heun repeats every timestep but the first.
  std::vector<double> heun_unique{heun.timesteps().front()};
  for (std::size_t i = 1; i < heun.timesteps().size(); i += 2) heun_unique.push_back(heun.timesteps()[i]);
  REQUIRE(heun_unique.size() == sd_betas.size());
  REQUIRE(euler.timesteps().size() == ddpm_betas.size());
  // The first is exactly 999 (float32 distances, as diffusers computes them). The rest agree to
  // NumPy's own float32 log, which is not correctly rounded and differs between CPUs (<= 2e-5).
  CHECK(heun_unique[0] == 999.0);
  CHECK(euler.timesteps()[0] == 999.0);
  for (std::size_t i = 0; i < sd_betas.size(); ++i) {
    CHECK(heun_unique[i] == Approx(sd_betas[i]).margin(2e-5));
    CHECK(euler.timesteps()[i] == Approx(ddpm_betas[i]).margin(2e-5));
  }
}

TEST_CASE("Karras sigmas over a single training timestep give timestep 0, without reading out of bounds") {
  // Found by tests/fuzz/fuzz_scheduler_config: sigma_to_t indexed log_sigmas[-1] when
  // num_train_timesteps is 1 (the sanitizer build reports the read; here the result was -1 or NaN).
  for (const char* name : {"EulerDiscreteScheduler", "HeunDiscreteScheduler", "DPMSolverMultistepScheduler",
                           "UniPCMultistepScheduler"}) {
    INFO(name);
    auto s = make_scheduler<float>(name, json{{"num_train_timesteps", 1}, {"use_karras_sigmas", true}});
    s->set_timesteps(1);
    REQUIRE_FALSE(s->timesteps().empty());
    for (double t : s->timesteps()) CHECK(t == 0.0);
  }
}

TEST_CASE("add_noise and get_velocity are consistent with the schedule") {
  Generator gen(1);
  const auto x0 = gen.randn<double>({3, 2, 4}), eps = gen.randn<double>({3, 2, 4});
  DDPMScheduler<double> s;
  const std::vector<std::int64_t> t{0, 499, 999};
  const auto xt = s.add_noise(x0, eps, t);
  const auto v = s.get_velocity(x0, eps, t);
  const auto ac = s.alphas_cumprod();
  for (int b = 0; b < 3; ++b) {
    const double a = ac.data()[t[b]];
    for (int k = 0; k < 8; ++k) {
      const int i = b * 8 + k;
      CHECK(xt.data()[i] == Approx(std::sqrt(a) * x0.data()[i] + std::sqrt(1 - a) * eps.data()[i]));
      // x0 = sqrt(a) x_t - sqrt(1 - a) v
      CHECK(std::sqrt(a) * xt.data()[i] - std::sqrt(1 - a) * v.data()[i] ==
            Approx(x0.data()[i]).margin(1e-12));
    }
  }
  // timesteps as a tensor give the same result
  const auto xt2 = s.add_noise(x0, eps, Tensor<double>::from_vector({0, 499, 999}));
  CHECK(xt2.to_vector() == xt.to_vector());
  // sigma schedulers: x0 + sigma * noise
  EulerDiscreteScheduler<double> e;
  e.set_timesteps(10);
  const double t0 = e.timesteps()[3];
  const auto xe = e.add_noise(x0, eps, std::vector<double>{t0, t0, t0});
  CHECK(xe.data()[5] == Approx(x0.data()[5] + e.sigmas().data()[3] * eps.data()[5]));
}

TEST_CASE("with a perfect noise prediction a step recovers x0") {
  Generator gen(2);
  const auto x0 = gen.randn<double>({2, 5}), eps = gen.randn<double>({2, 5});
  for (const std::string name : {"DDPMScheduler", "DDIMScheduler"}) {
    INFO(name);
    auto s = make_scheduler<double>(name, json{{"clip_sample", false}});
    s->set_timesteps(50);
    const double t = s->timesteps()[10];
    const auto xt = s->add_noise(x0, eps, std::vector<double>{t, t});
    const auto out = s->step(eps, t, xt, gen);
    for (int i = 0; i < 10; ++i)
      CHECK(out.pred_original_sample.data()[i] == Approx(x0.data()[i]).margin(1e-5));
  }
  // DDIM with eta = 0 and set_alpha_to_one lands exactly on x0 at the last step
  DDIMScheduler<double> ddim({.clip_sample = false});
  ddim.set_timesteps(10);
  const double t = ddim.timesteps().back();
  const auto xt = ddim.add_noise(x0, eps, std::vector<double>{t, t});
  CHECK(ddim.step(eps, t, xt).prev_sample.data()[3] == Approx(x0.data()[3]).margin(1e-5));
}

TEST_CASE("stochastic steps are reproducible from the seed and use the given noise") {
  auto run = [](std::uint64_t seed) {
    EulerAncestralDiscreteScheduler<float> s;
    s.set_timesteps(5);
    Generator gen(seed);
    auto x = gen.randn<float>({1, 8});
    for (double t : s.timesteps()) x = s.step(s.scale_model_input(x, t), t, x, gen).prev_sample;
    return x.to_vector();
  };
  CHECK(run(7) == run(7));
  CHECK(run(7) != run(8));
  // DDIM with eta: noise enters scaled by eta * sigma_t
  DDIMScheduler<double> s({.clip_sample = false}, {.eta = 1.0});
  s.set_timesteps(10);
  const auto x = Tensor<double>::full({1, 4}, 0.3), m = Tensor<double>::full({1, 4}, 0.1);
  const auto a = s.step(m, 500, x, Tensor<double>::zeros({1, 4})).prev_sample;
  const auto b = s.step(m, 500, x, Tensor<double>::ones({1, 4})).prev_sample;
  const auto ac = s.alphas_cumprod();
  const double at = ac.data()[500], ap = ac.data()[400];
  const double sigma = std::sqrt((1 - ap) / (1 - at) * (1 - at / ap));
  CHECK(b.data()[0] - a.data()[0] == Approx(sigma).epsilon(1e-5));
}

TEST_CASE("a misspelled config key warns, naming the key and the file; strict mode refuses it") {
  const diffuse::testing::TempDir dir("diffuse_sched_keys");
  io::write_json(dir.path / "scheduler_config.json", {{"_class_name", "DDPMScheduler"},
                                                      {"beta_schedul", "squaredcos_cap_v2"},
                                                      {"_diffusers_version", "0.21.4"}});
  {
    CaptureWarnings w;
    const auto s = load_scheduler<float>(dir.path);
    REQUIRE(w.messages().size() == 1);
    CHECK_THAT(w.messages()[0], Contains("beta_schedul") && Contains("DDPMScheduler") &&
                                    Contains((dir.path / "scheduler_config.json").string()));
    CHECK(s->to_json()["beta_schedule"] == "linear");  // ignored, as diffusers ignores it
  }
  const auto saved = io::unknown_config_keys().exchange(io::UnknownConfigKeys::error);
  CHECK_THROWS_WITH(load_scheduler<float>(dir.path), Contains("beta_schedul") && Contains("strict"));
  io::unknown_config_keys() = saved;
}

TEST_CASE("config integers out of range are errors, not undefined conversions") {
  for (const char* text :
       {R"({"num_train_timesteps": 1e300})", R"({"num_train_timesteps": -1e19})",
        R"({"num_train_timesteps": 18446744073709551615})", R"({"num_train_timesteps": 2.5})"})
    CHECK_THROWS_WITH(DDPMScheduler<float>::from_config(io::parse_json(text)), Contains("integer"));
  // In range but absurd: refused before allocating (was std::bad_alloc in all eight schedulers).
  // 9,999,999 took 30 s per scheduler under the fuzzers' ASan (found by fuzz_scheduler_config).
  for (const std::string& cls : scheduler_names())
    for (std::int64_t n : {std::int64_t{1000000000000}, std::int64_t{9999999}, std::int64_t{1000001}})
      CHECK_THROWS_WITH(make_scheduler<float>(cls, {{"num_train_timesteps", n}}),
                        Contains(cls) && Contains("num_train_timesteps") && Contains("limit of 1000000"));
}

TEST_CASE("betas outside (0, 1) are refused by every scheduler (they gave NaN samples)") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (const std::string& cls : scheduler_names()) {
    INFO(cls);
    CHECK_THROWS_WITH(make_scheduler<float>(cls, {{"beta_end", 2.0}}),
                      Contains("(0, 1)") && Contains("beta_end 2"));
    CHECK_THROWS_WITH(make_scheduler<float>(cls, {{"beta_start", -1.0}}), Contains("(0, 1)"));
    CHECK_THROWS_WITH(make_scheduler<float>(cls, {{"beta_schedule", "scaled_linear"}, {"beta_end", 1.5}}),
                      Contains("(0, 1)"));
    CHECK_THROWS_WITH(
        make_scheduler<float>(cls, {{"num_train_timesteps", 3}, {"trained_betas", {0.1, nan, 0.2}}}),
        Contains("trained_betas") && Contains("(0, 1)"));
    CHECK_THROWS_WITH(make_scheduler<float>(cls, {{"num_train_timesteps", 2}, {"trained_betas", {0.1, 1.0}}}),
                      Contains("trained_betas"));
    CHECK_NOTHROW(make_scheduler<float>(cls, {{"num_train_timesteps", 2}, {"trained_betas", {0.1, 0.2}}}));
  }
}

// The course's pictures, to look at rather than read about.
//
// 1. The forward process: a strip of scheduler.add_noise(x0, noise, t) at several timesteps,
//    for each of diffusers' beta schedules (linear, scaled_linear, squaredcos_cap_v2, sigmoid).
// 2. The from-scratch notebook's corruption at amounts 0 .. 1.
// 3. The schedules themselves: sqrt(alphas_cumprod) (how much of the image is left) and
//    sqrt(1 - alphas_cumprod) (how much noise there is) per timestep, one SVG per schedule and
//    one comparing them all.
// 4. With --metrics FILE (a CSV or JSON-lines file from training::MetricsLogger with a "loss"
//    column): the loss curve, raw and smoothed, on a linear and a log axis.
//
// Usage: pictures [--out DIR] [--data DIR] [--metrics FILE] [--seed S]
// Images come from Fashion-MNIST (--data, default the Debian package's folder).
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <diffuse/data/fashion_mnist.hpp>
#include <diffuse/schedulers/ddpm.hpp>
#include <diffuse/training/metrics.hpp>
#include <diffuse/viz/grid.hpp>
#include <diffuse/viz/plots.hpp>
#include <diffuse/viz/strips.hpp>

using namespace diffuse;

namespace {
struct Args {
  std::filesystem::path out = "outputs/pictures";
  std::filesystem::path data = data::FashionMNIST::default_root();
  std::filesystem::path metrics;
  std::uint64_t seed = 0;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    auto value = [&](const char* flag) -> std::string {
      if (i + 1 >= argc) throw Error(std::string("missing value after ") + flag);
      return argv[++i];
    };
    if (!std::strcmp(argv[i], "--out"))
      a.out = value("--out");
    else if (!std::strcmp(argv[i], "--data"))
      a.data = value("--data");
    else if (!std::strcmp(argv[i], "--metrics"))
      a.metrics = value("--metrics");
    else if (!std::strcmp(argv[i], "--seed"))
      a.seed = std::stoull(value("--seed"));
    else
      throw Error(std::string("unknown argument '") + argv[i] +
                  "' (known: --out DIR --data DIR --metrics FILE --seed S)");
  }
  return a;
}
}  // namespace

int main(int argc, char** argv) try {
  const Args args = parse(argc, argv);
  std::filesystem::create_directories(args.out);
  Generator gen(args.seed);

  // ---- Four test images, in [0,1] for corrupt() and in [-1,1] for the schedulers ----
  const auto test = data::FashionMNIST::test(args.data);
  Tensor<float> x01 = Tensor<float>::empty({4, 1, 28, 28});
  for (std::int64_t i = 0; i < 4; ++i) test.get_into(i, x01.data() + i * 784);
  Tensor<float> x = x01.clone();
  for (float& v : x) v = v * 2 - 1;

  // ---- 1. add_noise at several timesteps, for each beta schedule ----
  const std::vector<std::int64_t> timesteps{0, 50, 100, 200, 300, 500, 700, 999};
  std::vector<std::pair<std::string, std::unique_ptr<schedulers::DDPMScheduler<float>>>> schedules;
  for (const char* name : {"linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid"})
    schedules.emplace_back(name, std::make_unique<schedulers::DDPMScheduler<float>>(
                                     schedulers::DDPMScheduler<float>::Config{.beta_schedule = name}));
  for (const auto& [name, s] : schedules) {
    Generator g(args.seed);  // the same noise for every schedule, so only the schedule differs
    const auto path = args.out / ("noise_strip_" + name + ".png");
    io::write_png(path, viz::noise_strip(*s, x, timesteps, g));
    std::printf("wrote %s  (columns: t = 0, 50, 100, 200, 300, 500, 700, 999)\n", path.c_str());
  }

  // ---- 2. The notebook's corruption at amounts 0, 0.1, ..., 1 ----
  std::vector<double> amounts;
  for (int k = 0; k <= 10; ++k) amounts.push_back(k / 10.0);
  const auto corrupt_path = args.out / "corruption_strip.png";
  io::write_png(corrupt_path, viz::corruption_strip(x01, amounts, gen));
  std::printf("wrote %s  (columns: amount = 0, 0.1, ..., 1)\n", corrupt_path.c_str());

  // ---- 3. The schedules as curves ----
  std::vector<std::pair<std::string, const schedulers::Scheduler<float>*>> all;
  for (const auto& [name, s] : schedules) {
    const auto path = args.out / ("schedule_" + name + ".svg");
    viz::schedule_plot(*s, name).save(path);
    std::printf("wrote %s\n", path.c_str());
    all.emplace_back(name, s.get());
  }
  viz::schedule_plot(all, "Beta schedules: signal (solid) and noise (dashed)")
      .save(args.out / "schedules.svg");
  std::printf("wrote %s\n", (args.out / "schedules.svg").c_str());

  // ---- 4. A training run's loss, if given ----
  if (!args.metrics.empty()) {
    std::vector<double> losses;
    for (const auto& row : training::read_metrics(args.metrics))
      if (row.contains("loss") && row["loss"].is_number()) losses.push_back(row["loss"].get<double>());
    if (losses.empty()) throw Error("'" + args.metrics.string() + "' has no numeric \"loss\" column");
    viz::loss_plot(losses).save(args.out / "loss.svg");
    viz::loss_plot(losses, {.log_y = true}).save(args.out / "loss_log.svg");
    std::printf("wrote %s and loss_log.svg (%zu steps)\n", (args.out / "loss.svg").c_str(), losses.size());
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "pictures: %s\n", e.what());
  return 1;
}

// Model-level throughput of the course's models, one JSON line per case (float32, all OpenMP threads):
//   {"case", "batch", "threads", "train_img_per_s", "forward_img_per_s", "peak_rss_mb", "base_rss_mb",
//    "gflops", "gemm_gflops"}
// train = forward + MSE + backward + AdamW step; forward = one no-grad forward; peak_rss_mb = the
// process's peak resident memory during the training steps, base_rss_mb = its resident memory before
// the case built anything; gflops = GFLOP/s of the forward (product kernels' FLOPs / time; Winograd
// convolutions count the direct sum's FLOPs, so this is the effective rate);
// gemm_gflops = Eigen's own 1024x1024 float GEMM on all threads, in the same run.
// The case sample_dpmpp20 times 256 images from unet_course28, DPM-Solver++ in 20 steps, and reports
// them as forward_img_per_s (and sample_s). benchmarks/peer/peer_models.py measures PyTorch the same
// way; benchmarks/compare.py runs both, alternating.
//
//   bench_models [--case NAME] [--min_time SECONDS] [--list]
#include <Eigen/Core>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "diffuse/core/tensor.hpp"
#include "diffuse/models/basic_unet.hpp"
#include "diffuse/models/unet_2d.hpp"
#include "diffuse/nn/functional.hpp"
#include "diffuse/optim/adamw.hpp"
#include "diffuse/pipelines/diffusion_pipeline.hpp"
#include "diffuse/schedulers/dpm_solver_multistep.hpp"
#include "main_job_model.hpp"

using namespace diffuse;

namespace {

// Peak resident memory (VmHWM) and current resident memory (VmRSS) of this process, in MB.
double proc_status_mb(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(key, 0) == 0) return std::stod(line.substr(std::strlen(key))) / 1024.0;
  return 0;
}
// Writing 5 to clear_refs resets the peak to the current resident size (Linux >= 4.0).
void reset_peak_rss() { std::ofstream("/proc/self/clear_refs") << "5"; }

// Seconds per call of f: one warm-up call, then at least 3 calls and min_time seconds.
double seconds_per_call(const std::function<void()>& f, double min_time) {
  f();
  int calls = 0;
  const auto t0 = std::chrono::steady_clock::now();
  double elapsed = 0;
  do {
    f();
    ++calls;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  } while (calls < 3 || elapsed < min_time);
  return elapsed / calls;
}

double eigen_gemm_gflops(double min_time) {
  const int n = 1024;
  Eigen::MatrixXf a = Eigen::MatrixXf::Random(n, n), b = Eigen::MatrixXf::Random(n, n), c(n, n);
  const double s = seconds_per_call([&] { c.noalias() = a * b; }, min_time);
  return 2.0 * n * n * n / s / 1e9;
}

struct Result {
  std::int64_t batch = 0;
  double train = 0, forward = 0, peak_rss = 0, base_rss = 0, gflops = 0, sample_s = 0;
};

// A denoiser case: net(x, t) -> prediction with x [batch, C, S, S].
template <class Net>
Result time_denoiser(Net& net, std::int64_t batch, std::int64_t channels, std::int64_t size, double min_time,
                     double base_rss) {
  Generator gen(0);
  Result r{.batch = batch, .base_rss = base_rss};
  const Tensor<float> x = gen.randn<float>({batch, channels, size, size});
  const Tensor<float> target = gen.randn<float>({batch, channels, size, size});
  const Tensor<float> t = gen.randint<float>(0, 1000, {batch});
  optim::AdamW<float> opt(net.parameters(), {.lr = 1e-4});
  reset_peak_rss();
  r.train = batch / seconds_per_call(
                        [&] {
                          auto loss = nn::functional::mse_loss(net(x, t), target);
                          opt.zero_grad();
                          loss.backward();
                          opt.step();
                        },
                        min_time);
  r.peak_rss = proc_status_mb("VmHWM:");
  std::int64_t flops = 0;
  const double fwd = seconds_per_call(
      [&] {
        NoGradGuard no_grad;
        const std::int64_t before = kernels::flop_counter().load();
        net(x, t);
        flops = kernels::flop_counter().load() - before;
      },
      min_time);
  r.forward = batch / fwd;
  r.gflops = double(flops) / fwd / 1e9;
  return r;
}

// BasicUNet takes no timestep: an adapter with the denoiser signature.
struct BasicUNetCase {
  models::BasicUNet<float> net{1, 1};
  Tensor<float> operator()(const Tensor<float>& x, const Tensor<float>&) const { return net(x); }
  std::vector<Tensor<float>> parameters() const { return net.parameters(); }
};

models::UNet2DConfig course28() {
  return {.sample_size = 28,
          .in_channels = 1,
          .out_channels = 1,
          .layers_per_block = 2,
          .block_out_channels = {32, 64, 64},
          .down_block_types = {"DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"},
          .up_block_types = {"AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"}};
}
models::UNet2DConfig course32() {
  return {.sample_size = 32,
          .in_channels = 3,
          .out_channels = 3,
          .layers_per_block = 2,
          .block_out_channels = {64, 128, 128, 256},
          .down_block_types = {"DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"},
          .up_block_types = {"AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D"}};
}

Result unet_case(const models::UNet2DConfig& config, std::int64_t batch, double min_time, double base) {
  Generator gen(0);
  models::UNet2DModel<float> unet(config, gen);
  return time_denoiser(unet, batch, config.in_channels, config.sample_size->height, min_time, base);
}

Result sample_case(double, double base) {
  Generator gen(0);
  auto unet = std::make_shared<models::UNet2DModel<float>>(course28(), gen);
  auto scheduler = std::make_shared<schedulers::DPMSolverMultistepScheduler<float>>();
  pipelines::DiffusionPipeline<float> pipe(unet, scheduler);
  Result r{.batch = 256, .base_rss = base};
  reset_peak_rss();
  // One run, no warm-up: 20 steps of the same shapes warm up on their own (PyTorch's takes minutes).
  const auto t0 = std::chrono::steady_clock::now();
  pipe({.batch_size = 256, .num_inference_steps = 20}, gen);
  r.sample_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.forward = 256 / r.sample_s;
  r.peak_rss = proc_status_mb("VmHWM:");
  return r;
}

const std::map<std::string, std::function<Result(double, double)>>& cases() {
  static const std::map<std::string, std::function<Result(double, double)>> all{
      {"basic_unet",
       [](double m, double base) {
         BasicUNetCase net;
         return time_denoiser(net, 128, 1, 28, m, base);
       }},
      {"unet_course28", [](double m, double base) { return unet_case(course28(), 128, m, base); }},
      {"unet_course32", [](double m, double base) { return unet_case(course32(), 16, m, base); }},
      {"unet_main",
       [](double m, double base) {
         return unet_case(bench::main_job_model(), 64, m, base);  // at its default batch
       }},
      {"sample_dpmpp20", sample_case},
  };
  return all;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> only;
  double min_time = 2.0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--case" && i + 1 < argc) {
      only.push_back(argv[++i]);
    } else if (a == "--min_time" && i + 1 < argc) {
      min_time = std::stod(argv[++i]);
    } else if (a == "--list") {
      for (const auto& [name, f] : cases()) std::printf("%s\n", name.c_str());
      return 0;
    } else {
      std::fprintf(stderr, "usage: bench_models [--case NAME]... [--min_time SECONDS] [--list]\n");
      return 2;
    }
  }
  for (const auto& name : only)
    if (!cases().count(name)) {
      std::fprintf(stderr, "bench_models: unknown case '%s' (--list shows them)\n", name.c_str());
      return 2;
    }
  if (only.size() != 1) {
    // Each case in a process of its own (this program again, with --case), so that its peak memory
    // is its own; a fork would inherit OpenMP's threads in a state the child cannot use.
    for (const auto& [name, run] : cases()) {
      if (!only.empty() && std::find(only.begin(), only.end(), name) == only.end()) continue;
      const std::string cmd = "'" + std::filesystem::read_symlink("/proc/self/exe").string() + "' --case " +
                              name + " --min_time " + std::to_string(min_time);
      std::fflush(stdout);
      if (std::system(cmd.c_str()) != 0) {
        std::fprintf(stderr, "bench_models: case %s failed\n", name.c_str());
        return 1;
      }
    }
    return 0;
  }
  const std::string& name = only.front();
  const double base = proc_status_mb("VmRSS:");
  const double gemm = eigen_gemm_gflops(min_time / 4);
  const Result r = cases().at(name)(min_time, base);
  auto number = [](double v) { return v > 0 ? std::to_string(v) : std::string("null"); };
  std::printf(
      "{\"case\": \"%s\", \"impl\": \"diffuse\", \"batch\": %lld, \"threads\": %d, \"train_img_per_s\": %s, "
      "\"forward_img_per_s\": %.2f, \"peak_rss_mb\": %.1f, \"base_rss_mb\": %.1f, \"gflops\": %s, "
      "\"gemm_gflops\": %.2f",
      name.c_str(), static_cast<long long>(r.batch), num_threads(), number(r.train).c_str(), r.forward,
      r.peak_rss, r.base_rss, number(r.gflops).c_str(), gemm);
  if (r.sample_s > 0) std::printf(", \"sample_s\": %.3f", r.sample_s);
  std::printf("}\n");
  return 0;
}

// UNet2DModel against diffusers: every UNet case of the fixture manifest is loaded from its diffusers
// folder and run forward and backward in float and in double; outputs, input gradients and
// parameter gradients must match diffusers' to max|ours - ref| <= tol * max|ref|.
// Folder: $DIFFUSE_DIFFUSERS_FIXTURES, else the build's default. A manifest without UNets passes.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "diffuse/autograd/reduce.hpp"
#include "diffuse/core/tensor.hpp"
#include "diffuse/io/json.hpp"
#include "diffuse/io/safetensors.hpp"
#include "diffuse/models/unet_2d.hpp"
#include "fixtures.hpp"

using namespace diffuse;
namespace fs = std::filesystem;

namespace {

struct UNetCase {
  std::string name;
  fs::path dir, file;
  std::int64_t params = -1;  // diffusers' parameter count, when the manifest gives it
};

std::vector<UNetCase> unet_cases() {
  const fs::path root = testing::fixtures_dir();
  const io::json manifest = testing::read_manifest();
  std::vector<UNetCase> cases;
  if (!manifest.contains("unets")) return cases;
  for (const auto& c : manifest["unets"])
    cases.push_back({c.value("name", c["dir"].get<std::string>()), root / c["dir"].get<std::string>(),
                     root / c["file"].get<std::string>(), c.value("params", std::int64_t{-1})});
  return cases;
}

// max|ours - ref| / max(max|ref|, floor) (0/0: the absolute error).
template <class T>
double relative_error(const Tensor<T>& ours, const Tensor<double>& ref, double floor = 0) {
  REQUIRE(ours.shape() == ref.shape());
  double err = 0, scale = floor;
  for (std::int64_t i = 0; i < ref.numel(); ++i) {
    err = std::max(err, std::abs(static_cast<double>(ours.data()[i]) - ref.data()[i]));
    scale = std::max(scale, std::abs(ref.data()[i]));
  }
  return scale > 0 ? err / scale : err;
}

double max_abs(const Tensor<double>& t) {
  double m = 0;
  for (double v : t) m = std::max(m, std::abs(v));
  return m;
}

// "a.b.to_k.bias" -> "a.b.to_k"
std::string layer_of(const std::string& name) { return name.substr(0, name.rfind('.')); }

struct Outcome {
  Tensor<double> output, grad_input;
  std::map<std::string, Tensor<double>> grads;
};

// Forward and backward of sum(output * R), R = linspace(-1, 1, numel) in the output's shape.
template <class T>
Outcome run(const models::UNet2DModel<T>& unet, const std::map<std::string, Tensor<double>>& ref) {
  Tensor<T> input = ref.at("input").template to<T>();
  input.requires_grad_();
  Tensor<T> timesteps = ref.at("timesteps").template to<T>();
  Tensor<T> labels;
  if (ref.count("class_labels")) labels = ref.at("class_labels").template to<T>();
  for (auto& p : unet.named_parameters()) Tensor<T>(p.second).zero_grad();
  Tensor<T> out = unet(input, timesteps, labels);
  Tensor<T> R = Tensor<T>::linspace(T(-1), T(1), out.numel()).reshape(out.shape());
  sum(out * R).backward();
  Outcome o{out.template to<double>(), input.grad().template to<double>(), {}};
  for (auto& [name, p] : unet.named_parameters())
    if (p.grad().defined()) o.grads[name] = p.grad().template to<double>();
  return o;
}

}  // namespace

TEST_CASE("UNet2DModel matches diffusers on every fixture case (forward and backward, float and double)") {
  const auto cases = unet_cases();
  if (cases.empty()) WARN("no UNet cases in " << (testing::fixtures_dir() / "manifest.json").string());
  for (const auto& c : cases) {
    DYNAMIC_SECTION("case " << c.name) {
      const auto t0 = std::chrono::steady_clock::now();
      const auto ref = io::load_safetensors<double>(c.file);
      const auto weights = io::load_safetensors_info(c.dir / "diffusion_pytorch_model.safetensors");

      // float: diffusers as users run it
      auto unet_f = models::UNet2DModel<float>::from_pretrained(c.dir);
      {
        // named_parameters() are exactly the checkpoint's keys
        std::set<std::string> ours, theirs;
        for (auto& [name, p] : unet_f.named_parameters()) ours.insert(name);
        for (auto& [name, info] : weights) theirs.insert(name);
        CHECK(ours == theirs);
        if (c.params >= 0) CHECK(unet_f.num_parameters() == c.params);
      }
      Outcome f = run(unet_f, ref);
      const double e_out_f = relative_error(f.output, ref.at("output.f32"));
      const double e_gin_f = relative_error(f.grad_input, ref.at("grad_input.f32"));
      CHECK(e_out_f <= 1e-4);
      CHECK(e_gin_f <= 1e-4);

      // double: the float64 references, every parameter gradient in the file
      auto unet_d = models::UNet2DModel<double>::from_pretrained(c.dir);
      Outcome d = run(unet_d, ref);
      const double e_out_d = relative_error(d.output, ref.at("output.f64"));
      const double e_gin_d = relative_error(d.grad_input, ref.at("grad_input.f64"));
      CHECK(e_out_d <= 1e-9);
      CHECK(e_gin_d <= 1e-9);
      // Per parameter, relative to max|ref|. A gradient that is zero up to rounding (to_k.bias: softmax
      // ignores a constant added to every key score) has only rounding noise as reference; its scale
      // is floored at 1e-6 of the largest gradient of the same layer.
      std::map<std::string, double> layer_scale;
      for (const auto& [key, value] : ref)
        if (key.rfind("grad.", 0) == 0)
          layer_scale[layer_of(key)] = std::max(layer_scale[layer_of(key)], max_abs(value));
      double e_grad_d = 0;
      std::string worst_grad;
      int n_grads = 0;
      for (const auto& [key, value] : ref) {
        if (key.rfind("grad.", 0) != 0) continue;
        const std::string name = key.substr(5);
        INFO("parameter gradient " << name);
        REQUIRE(d.grads.count(name));
        const double e = relative_error(d.grads.at(name), value, 1e-6 * layer_scale[layer_of(key)]);
        CHECK(e <= 1e-9);
        if (e >= e_grad_d) {
          e_grad_d = e;
          worst_grad = name;
        }
        ++n_grads;
      }

      // save_pretrained -> from_pretrained: the same outputs, bit for bit
      const fs::path tmp = fs::temp_directory_path() /
                           ("diffuse_unet_roundtrip_" + c.name + "_" +
                            std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
      unet_f.save_pretrained(tmp);
      auto reloaded = models::UNet2DModel<float>::from_pretrained(tmp);
      CHECK(reloaded.config().to_json() == unet_f.config().to_json());
      {
        NoGradGuard no_grad;
        Tensor<float> input = ref.at("input").to<float>(), ts = ref.at("timesteps").to<float>(), labels;
        if (ref.count("class_labels")) labels = ref.at("class_labels").to<float>();
        Tensor<float> a = unet_f(input, ts, labels), b = reloaded(input, ts, labels);
        CHECK(a.to_vector() == b.to_vector());
        CHECK(a.to_vector() == f.output.to<float>().to_vector());
      }
      fs::remove_all(tmp);

      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf(
          "[unet conformance] %-22s float: output %.2e grad_input %.2e | double: output %.2e grad_input "
          "%.2e, "
          "%d parameter grads worst %.2e (%s) | %.1fs\n",
          c.name.c_str(), e_out_f, e_gin_f, e_out_d, e_gin_d, n_grads, e_grad_d, worst_grad.c_str(), secs);
    }
  }
}

// "Diffusion Models from Scratch", the course notebook, in C++ on Fashion-MNIST.
//
// 1. Look at the data and at the notebook's corruption: x * (1 - amount) + noise * amount.
// 2. Train the notebook's BasicUNet to predict the clean image from a corrupted one
//    (Adam, lr 1e-3, batch 128), printing the loss per epoch.
// 3. Look at its predictions, then sample: start from noise and repeatedly move a fraction
//    of the way towards the model's prediction (5 steps, then 40 steps).
//
// Usage: from_scratch [--epochs N] [--out DIR] [--data DIR] [--seed S]
// Every figure is written as a PNG into DIR (default: outputs/from_scratch).
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

#include <diffuse/diffuse.hpp>

using namespace diffuse;
namespace F = diffuse::nn::functional;

namespace {
struct Args {
  int epochs = 3;
  std::filesystem::path out = "outputs/from_scratch";
  std::filesystem::path data = data::FashionMNIST::default_root();
  std::uint64_t seed = 42;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    auto value = [&](const char* flag) -> std::string {
      if (i + 1 >= argc) throw Error(std::string("missing value after ") + flag);
      return argv[++i];
    };
    if (!std::strcmp(argv[i], "--epochs"))
      a.epochs = std::stoi(value("--epochs"));
    else if (!std::strcmp(argv[i], "--out"))
      a.out = value("--out");
    else if (!std::strcmp(argv[i], "--data"))
      a.data = value("--data");
    else if (!std::strcmp(argv[i], "--seed"))
      a.seed = std::stoull(value("--seed"));
    else
      throw Error(std::string("unknown argument '") + argv[i] +
                  "' (known: --epochs N --out DIR --data DIR --seed S)");
  }
  return a;
}

// The first n images of a data set as one batch [n, 1, 28, 28].
Tensor<float> first_images(const data::FashionMNIST& ds, std::int64_t n) {
  Tensor<float> x = Tensor<float>::empty({n, 1, 28, 28});
  for (std::int64_t i = 0; i < n; ++i) ds.get_into(i, x[i].data());
  return x;
}

// The notebook's sampler: start from uniform noise, and at step i mix in 1/(n - i) of the
// prediction. Returns the history of inputs and of predictions (one batch per step).
std::pair<std::vector<Tensor<float>>, std::vector<Tensor<float>>> sample(const models::BasicUNet<float>& net,
                                                                         std::int64_t count, int n_steps,
                                                                         Generator& gen) {
  NoGradGuard no_grad;
  Tensor<float> x = gen.rand<float>({count, 1, 28, 28});
  std::vector<Tensor<float>> xs, preds;
  for (int i = 0; i < n_steps; ++i) {
    Tensor<float> pred = net(x);
    const float mix = 1.0f / static_cast<float>(n_steps - i);
    xs.push_back(x);
    preds.push_back(pred);
    x = x * (1 - mix) + pred * mix;
  }
  xs.push_back(x);
  return {xs, preds};
}
}  // namespace

int main(int argc, char** argv) try {
  const Args args = parse(argc, argv);
  std::filesystem::create_directories(args.out);
  Generator gen(args.seed);
  std::printf("diffuse: Diffusion Models from Scratch on Fashion-MNIST (%d threads)\n", num_threads());

  // ---- The data, and what corruption does to it ----
  auto train = data::FashionMNIST::train(args.data);
  auto test = data::FashionMNIST::test(args.data);
  std::printf("training images: %lld, test images: %lld\n", static_cast<long long>(train.size()),
              static_cast<long long>(test.size()));
  Tensor<float> x = first_images(train, 8);
  Tensor<float> amount = Tensor<float>::linspace(0, 1, 8);  // left: clean, right: pure noise
  viz::Figure corruption;
  corruption.add(x).add(models::corrupt(x, amount, gen));
  corruption.save(args.out / "input_and_corrupted.png");

  // ---- Training: predict the clean image from a corrupted one ----
  models::BasicUNet<float> net(1, 1, gen);
  std::printf("BasicUNet parameters: %lld\n", static_cast<long long>(net.num_parameters()));
  optim::Adam opt(net.parameters(), {.lr = 1e-3});
  data::DataLoader loader(train, {.batch_size = 128, .shuffle = true}, gen);
  std::vector<double> losses;
  for (int epoch = 0; epoch < args.epochs; ++epoch) {
    const auto start = std::chrono::steady_clock::now();
    double epoch_loss = 0;
    std::int64_t batches = 0;
    training::ProgressBar progress(loader.size(),
                                   {.desc = "epoch " + std::to_string(epoch)});  // terminals only
    for (auto& batch : loader) {
      Tensor<float> noise_amount = gen.rand<float>({batch.size()});
      Tensor<float> noisy = models::corrupt(batch.images, noise_amount, gen);
      Tensor<float> loss = F::mse_loss(net(noisy), batch.images);
      opt.zero_grad();
      loss.backward();
      opt.step();
      losses.push_back(loss.item());
      epoch_loss += loss.item();
      ++batches;
      progress.update(1, loss.item());
    }
    progress.close();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("Finished epoch %d. Average loss for this epoch: %.6f (%.1f s, %.0f images/s)\n", epoch,
                epoch_loss / static_cast<double>(batches), seconds,
                static_cast<double>(train.size()) / seconds);
    std::fflush(stdout);
  }
  io::save_safetensors(args.out / "basic_unet.safetensors", net.state_dict());
  viz::loss_plot(losses, {.log_y = true}).save(args.out / "loss.svg");

  // ---- Predictions on test images at increasing corruption ----
  {
    NoGradGuard no_grad;
    Tensor<float> clean = first_images(test, 8);
    Tensor<float> noisy = models::corrupt(clean, amount, gen);
    viz::Figure fig;
    fig.add(clean).add(noisy).add(clamp(net(noisy), 0.f, 1.f));
    fig.save(args.out / "predictions.png");
  }

  // ---- Sampling ----
  {
    auto [xs, preds] = sample(net, 8, 5, gen);
    viz::Figure fig;  // one row per step: the input x at that step, then the model's prediction
    for (std::size_t i = 0; i < preds.size(); ++i)
      fig.add(concat(std::vector{clamp(xs[i], 0.f, 1.f), clamp(preds[i], 0.f, 1.f)}, 0), {.nrow = 16});
    fig.save(args.out / "sampling_5_steps.png");
  }
  {
    auto [xs, preds] = sample(net, 64, 40, gen);
    viz::save_image(clamp(xs.back(), 0.f, 1.f), args.out / "sampling_40_steps.png", {.nrow = 8});
  }
  std::printf(
      "Wrote %s/{input_and_corrupted,predictions,sampling_5_steps,sampling_40_steps}.png, loss.svg and "
      "basic_unet.safetensors\n",
      args.out.string().c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "from_scratch: %s\n", e.what());
  return 1;
}

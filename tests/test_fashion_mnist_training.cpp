// The notebook's training on the real data, shortened: BasicUNet on Fashion-MNIST must learn to
// undo corruption well beyond what the identity or a blur would give. Slow (about a minute on
// two cores), so it carries the ctest label `slow`: `ctest --preset slow`.
#include <catch2/catch.hpp>

#include "diffuse/core/tensor.hpp"
#include "diffuse/data/dataloader.hpp"
#include "diffuse/data/fashion_mnist.hpp"
#include "diffuse/models/basic_unet.hpp"
#include "diffuse/optim/adam.hpp"

using namespace diffuse;
namespace F = diffuse::nn::functional;

TEST_CASE("BasicUNet learns to denoise Fashion-MNIST") {
  Generator gen(0);
  auto train = data::FashionMNIST::train();
  auto test = data::FashionMNIST::test();
  models::BasicUNet<float> net(1, 1, gen);
  optim::Adam opt(net.parameters(), {.lr = 1e-3});
  data::DataLoader loader(train, {.batch_size = 128, .shuffle = true}, gen);

  int steps = 0;
  for (auto& batch : loader) {
    auto noisy = models::corrupt(batch.images, gen.rand<float>({batch.size()}), gen);
    auto loss = F::mse_loss(net(noisy), batch.images);
    opt.zero_grad();
    loss.backward();
    opt.step();
    if (++steps == 200) break;
  }

  // On held-out images at corruption 0.5: the model's error against the clean image, compared
  // with returning the corrupted input unchanged.
  NoGradGuard no_grad;
  Tensor<float> clean = Tensor<float>::empty({256, 1, 28, 28});
  for (std::int64_t i = 0; i < 256; ++i) test.get_into(i, clean[i].data());
  auto noisy = models::corrupt(clean, Tensor<float>::full({256}, 0.5f), gen);
  const float model_error = F::mse_loss(net(noisy), clean).item();
  const float identity_error = F::mse_loss(noisy, clean).item();
  INFO("model " << model_error << ", identity " << identity_error);
  CHECK(model_error < 0.4f * identity_error);
  CHECK(model_error < 0.025f);
}

// Includes only models/basic_unet.hpp and optim/adam.hpp and runs a training step: it links
// without including autograd's headers by hand.
#include <catch2/catch.hpp>

#include "diffuse/models/basic_unet.hpp"
#include "diffuse/optim/adam.hpp"

TEST_CASE("models/basic_unet.hpp + optim/adam.hpp alone: a training step links and lowers the loss") {
  using namespace diffuse;
  Generator gen(0);
  models::BasicUNet<float> net(1, 1, gen);
  optim::Adam opt(net.parameters(), {.lr = 1e-3});
  const Tensor<float> x = gen.rand<float>({2, 1, 8, 8});
  float first = 0, last = 0;
  for (int step = 0; step < 5; ++step) {
    auto loss = nn::functional::mse_loss(net(x), x);
    opt.zero_grad();
    loss.backward();
    opt.step();
    (step == 0 ? first : last) = loss.item();
  }
  CHECK(last < first);
}

// Builds against the installed package and trains one tiny step: headers, Eigen, OpenMP and
// stb (PNG writing) all have to be found through diffuse::diffuse.
#include <cstdio>
#include <filesystem>

#include <diffuse/diffuse.hpp>

int main() {
  using namespace diffuse;
  Generator gen(0);
  models::BasicUNet<float> net(1, 1, gen);
  optim::Adam opt(net.parameters(), {.lr = 1e-3});
  Tensor<float> x = gen.rand<float>({2, 1, 8, 8});
  auto loss = nn::functional::mse_loss(net(x), x);
  loss.backward();
  opt.step();
  auto png = std::filesystem::temp_directory_path() / "diffuse_consumer.png";
  viz::save_image(x, png);
  std::printf("consumer: %lld parameters, loss %.4f, wrote %s\n",
              static_cast<long long>(net.num_parameters()), loss.item(), png.string().c_str());
  return net.num_parameters() == 309057 && std::filesystem::file_size(png) > 0 ? 0 : 1;
}

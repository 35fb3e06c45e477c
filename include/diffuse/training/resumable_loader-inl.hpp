/// @file
/// The definitions of resumable_loader.hpp (never included by programs; see core/precompiled.hpp).
#pragma once
#include "diffuse/training/resumable_loader.hpp"

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "diffuse/core/error.hpp"
#include "diffuse/io/json.hpp"

namespace diffuse::training {

DIFFUSE_COLD DIFFUSE_INLINE nlohmann::json LoaderPosition::to_json() const {
  return {{"epoch", epoch},
          {"batch", batch},
          {"batches_per_epoch", batches_per_epoch},
          {"epoch_start_generator", {{"seed", epoch_start.seed}, {"offset", epoch_start.offset}}}};
}

DIFFUSE_COLD DIFFUSE_INLINE LoaderPosition LoaderPosition::from_json(const nlohmann::json& j) {
  try {
    LoaderPosition p;
    p.epoch = io::json_integer<std::int64_t>(j.at("epoch"), "data-loader epoch");
    p.batch = io::json_integer<std::int64_t>(j.at("batch"), "data-loader batch");
    p.batches_per_epoch =
        io::json_integer<std::int64_t>(j.at("batches_per_epoch"), "data-loader batches_per_epoch");
    const nlohmann::json& g = j.at("epoch_start_generator");
    p.epoch_start.seed = io::json_integer<std::uint64_t>(g.at("seed"), "data-loader generator seed");
    p.epoch_start.offset = io::json_integer<std::uint64_t>(g.at("offset"), "data-loader generator offset");
    if (p.epoch < 0 || p.batch < 0 || p.batches_per_epoch < 0) throw Error("negative epoch or batch count");
    return p;
  } catch (const nlohmann::json::exception& e) {
    throw Error("malformed data-loader position: " + std::string(e.what()));
  }
}

}  // namespace diffuse::training

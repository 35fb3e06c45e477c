// Collects diffuse::warn messages for the life of a scope (tests assert on them).
#pragma once
#include <string>
#include <vector>

#include "diffuse/core/warning.hpp"

struct CaptureWarnings {
  CaptureWarnings() : saved(diffuse::set_warning_handler(&record)) { messages().clear(); }
  ~CaptureWarnings() { diffuse::set_warning_handler(saved); }
  static std::vector<std::string>& messages() {
    static std::vector<std::string> m;
    return m;
  }
  static void record(const std::string& message) { messages().push_back(message); }
  diffuse::WarningHandler saved;
};

/// @file
/// The definitions of metrics.hpp (never included by programs; see core/precompiled.hpp).
#pragma once
#include "diffuse/training/metrics.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "diffuse/core/error.hpp"
#include "diffuse/io/atomic_file.hpp"
#include "diffuse/io/json.hpp"

namespace diffuse::training {

namespace detail {
DIFFUSE_INLINE MetricsFormat format_for(const std::filesystem::path& path,
                                        const std::optional<MetricsFormat>& f) {
  if (f) return *f;
  std::string ext = path.extension().string();
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext == ".csv" ? MetricsFormat::csv : MetricsFormat::jsonl;
}

DIFFUSE_INLINE std::string csv_cell(const nlohmann::json& v, const std::string& key) {
  if (v.is_null()) return "";
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number_integer()) return v.dump();
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::isnan(d)) return "nan";
    if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", d);
    return buf;
  }
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
    std::string q = "\"";
    for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
  }
  throw Error("MetricsLogger: metric '" + key + "' is " + v.type_name() +
              "; a CSV cell takes a number, bool or string");
}

/// Splits one CSV line into cells (quotes as RFC 4180).
DIFFUSE_INLINE std::vector<std::string> csv_split(const std::string& line) {
  std::vector<std::string> cells(1);
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"')
        cells.back() += '"', ++i;
      else if (c == '"')
        quoted = false;
      else
        cells.back() += c;
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      cells.emplace_back();
    } else if (c != '\r') {
      cells.back() += c;
    }
  }
  return cells;
}

/// A CSV cell back to JSON: integer, float (nan/inf too), bool, empty -> null, else string.
DIFFUSE_INLINE nlohmann::json csv_value(const std::string& s) {
  if (s.empty()) return nullptr;
  if (s == "true") return true;
  if (s == "false") return false;
  if (s == "nan") return std::nan("");
  if (s == "inf" || s == "-inf") return (s[0] == '-' ? -1.0 : 1.0) * HUGE_VAL;
  char* end = nullptr;
  const long long i = std::strtoll(s.c_str(), &end, 10);
  if (end && *end == '\0') return i;
  const double d = std::strtod(s.c_str(), &end);
  if (end && *end == '\0') return d;
  return s;
}
}  // namespace detail

DIFFUSE_INLINE MetricsRow::MetricsRow(std::initializer_list<value_type> metrics) {
  for (const auto& [name, value] : metrics) {
    if (contains(name)) throw Error("MetricsRow: metric '" + name + "' is given twice");
    metrics_.emplace_back(name, value);
  }
}

DIFFUSE_INLINE void MetricsRow::set(const std::string& name, nlohmann::json value) {
  for (auto& [n, v] : metrics_)
    if (n == name) {
      v = std::move(value);
      return;
    }
  metrics_.emplace_back(name, std::move(value));
}

DIFFUSE_INLINE const nlohmann::json* MetricsRow::find(std::string_view name) const {
  for (const auto& [n, v] : metrics_)
    if (n == name) return &v;
  return nullptr;
}

DIFFUSE_INLINE const nlohmann::json& MetricsRow::at(std::string_view name) const {
  if (const nlohmann::json* v = find(name)) return *v;
  std::string names;
  for (const auto& [n, v] : metrics_) names += (names.empty() ? "" : ", ") + n;
  throw Error("MetricsRow: no metric '" + std::string(name) +
              "' (the row holds: " + (names.empty() ? std::string("nothing") : names) + ")");
}

DIFFUSE_INLINE MetricsLogger::MetricsLogger(std::filesystem::path path, MetricsOptions options)
    : path_(std::move(path)), format_(detail::format_for(path_, options.format)) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (options.append && fs::is_regular_file(path_, ec) && fs::file_size(path_, ec) > 0) {
    // Cut a torn last line (no newline) left by a crash, then read the CSV header.
    const std::string text = io::read_file_bytes(path_);
    const std::size_t keep =
        text.empty() || text.back() == '\n' ? text.size() : text.rfind('\n') + 1;  // npos + 1 == 0
    if (keep != text.size()) fs::resize_file(path_, keep, ec);
    if (ec) throw Error("MetricsLogger: cannot repair '" + path_.string() + "': " + ec.message());
    if (format_ == MetricsFormat::csv && keep > 0) {
      columns_ = detail::csv_split(text.substr(0, text.find('\n')));
      header_written_ = true;
    }
  }
  file_ = std::fopen(path_.c_str(), options.append ? "ab" : "wb");
  if (!file_) throw FileError("MetricsLogger: cannot open '" + path_.string() + "' for writing");
}

DIFFUSE_INLINE void MetricsLogger::log(const MetricsRow& row) {
  std::string line;
  if (format_ == MetricsFormat::jsonl) {
    // One object per line; NaN and infinities as Python's json writes them (a diverged loss
    // should show as NaN, not vanish).
    line = "{";
    for (const auto& [k, v] : row) {
      line += (line.size() > 1 ? "," : "") + nlohmann::json(k).dump() + ":";
      const double d = v.is_number_float() ? v.get<double>() : 0.0;
      line += std::isfinite(d) ? v.dump() : std::isnan(d) ? "NaN" : d > 0 ? "Infinity" : "-Infinity";
    }
    line += "}\n";
  } else {
    if (!header_written_) {
      // The columns are those of the first row written: a first row that threw (an array cell)
      // leaves no keys behind to be written twice.
      columns_.clear();
      for (const auto& [k, v] : row) columns_.push_back(k);
      std::string header;
      for (std::size_t i = 0; i < columns_.size(); ++i)
        header += (i ? "," : "") + detail::csv_cell(columns_[i], "column name");
      line = header + "\n";
    }
    for (const auto& [k, v] : row)
      if (std::find(columns_.begin(), columns_.end(), k) == columns_.end()) {
        std::string cols;
        for (const auto& c : columns_) cols += (cols.empty() ? "" : ", ") + c;
        throw Error("MetricsLogger: metric '" + k + "' is not a column of '" + path_.string() + "' (" + cols +
                    "); log every metric from the first row on, or use JSON lines");
      }
    for (std::size_t i = 0; i < columns_.size(); ++i)
      line +=
          (i ? "," : "") + (row.contains(columns_[i]) ? detail::csv_cell(row[columns_[i]], columns_[i]) : "");
    line += "\n";
  }
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0)
    throw FileError("MetricsLogger: cannot write to '" + path_.string() + "' (disk full?)");
  header_written_ = true;
  ++rows_;
}

DIFFUSE_INLINE std::vector<MetricsRow> read_metrics(const std::filesystem::path& path,
                                                    std::optional<MetricsFormat> format) {
  std::string text = io::read_file_bytes(path);
  if (!text.empty() && text.back() != '\n')
    text.erase(text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1);
  const MetricsFormat f = detail::format_for(path, format);
  std::vector<MetricsRow> rows;
  std::vector<std::string> columns;
  std::istringstream lines(text);
  std::string line;
  for (std::int64_t n = 1; std::getline(lines, line); ++n) {
    if (line.empty() || line == "\r") continue;
    if (f == MetricsFormat::jsonl) {
      nlohmann::json j;
      try {
        j = io::parse_json(line);
      } catch (const Error& e) {
        throw FileError("read_metrics: '" + path.string() + "' line " + std::to_string(n) + ": " + e.what());
      }
      if (!j.is_object())
        throw FileError("read_metrics: '" + path.string() + "' line " + std::to_string(n) + " is " +
                        j.type_name() + ", not an object of metrics");
      MetricsRow row;
      for (auto& [name, value] : j.items()) row.set(name, value);
      rows.push_back(std::move(row));
      continue;
    }
    const auto cells = detail::csv_split(line);
    if (columns.empty()) {
      columns = cells;
      continue;
    }
    if (cells.size() != columns.size())
      throw FileError("read_metrics: '" + path.string() + "' line " + std::to_string(n) + " has " +
                      std::to_string(cells.size()) + " cells, the header " + std::to_string(columns.size()));
    MetricsRow row;
    for (std::size_t i = 0; i < cells.size(); ++i)
      if (!cells[i].empty()) row.set(columns[i], detail::csv_value(cells[i]));
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace diffuse::training

/// @file
/// MetricsLogger: one row of metrics per step, appended to a CSV file or a JSON-lines file and
/// flushed line by line, so a crash loses at most the line being written and never the earlier
/// ones (NaN and infinities written as Python's json does). read_metrics() reads either format back (e.g. to
/// plot the loss with viz::loss_plot).
///   training::MetricsLogger log("run/metrics.csv");                 // format from the extension
///   log.log({{"step", step}, {"epoch", epoch}, {"loss", loss.item()}, {"lr", lr}});
/// CSV: the first row's keys become the header; later rows may leave columns out (empty cells)
/// but may not add new ones (an Error naming the key). JSON lines: any keys, one object a line.
/// With append = true an existing file is continued (a resumed run): a torn last line from a
/// crash is cut off first, and a CSV keeps its header.
#pragma once
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "diffuse/core/error.hpp"
#include "diffuse/core/precompiled.hpp"

namespace diffuse::training {

/// One row: metric names and values, in the order given (a CSV file's columns follow its first
/// row). Written like a JSON object, `{{"step", step}, {"loss", loss}}`, and read like one,
/// `row["loss"]`, `row.contains("note")`. (A class of its own, not nlohmann::ordered_json: that
/// second JSON type cost every program that includes this header a second of compile time.)
class MetricsRow {
 public:
  /// One metric: its name and value.
  using value_type = std::pair<std::string, nlohmann::json>;

  MetricsRow() = default;
  /// The metrics in order. Throws diffuse::Error for a name given twice.
  MetricsRow(std::initializer_list<value_type> metrics);

  /// Sets a metric: replaces its value, or adds it at the end.
  void set(const std::string& name, nlohmann::json value);
  /// Whether the row holds the metric `name`.
  bool contains(std::string_view name) const { return find(name) != nullptr; }
  /// The value of `name`. Throws diffuse::Error if the row does not hold it.
  const nlohmann::json& at(std::string_view name) const;
  /// The value of `name` (as at()).
  const nlohmann::json& operator[](std::string_view name) const { return at(name); }

  /// The number of metrics.
  std::size_t size() const { return metrics_.size(); }
  /// Whether the row holds no metric.
  bool empty() const { return metrics_.empty(); }
  /// The (name, value) pairs, in order.
  std::vector<value_type>::const_iterator begin() const { return metrics_.begin(); }
  std::vector<value_type>::const_iterator end() const { return metrics_.end(); }

 private:
  const nlohmann::json* find(std::string_view name) const;

  std::vector<value_type> metrics_;
};

/// The file format: CSV or JSON lines.
enum class MetricsFormat { csv, jsonl };

/// Options of a MetricsLogger.
struct MetricsOptions {
  /// The file format.
  std::optional<MetricsFormat> format = {};  // default: csv for ".csv", JSON lines otherwise
  /// Continue an existing file (a resumed run).
  bool append = false;  // continue an existing file instead of replacing it
};

/// Writes one row of metrics per log() call to a CSV or JSON-lines file (see the file comment).
class MetricsLogger {
 public:
  /// Opens `path`, replacing it or, with options.append, continuing it. Throws
  /// diffuse::FileError if it cannot be opened, diffuse::Error if a torn last line cannot be cut.
  explicit MetricsLogger(std::filesystem::path path, MetricsOptions options = {});
  MetricsLogger(const MetricsLogger&) = delete;
  MetricsLogger& operator=(const MetricsLogger&) = delete;
  ~MetricsLogger() {
    if (file_) std::fclose(file_);
  }

  /// Appends one row and flushes it to the file.
  /// Throws diffuse::Error, in a CSV file, for a key that is not a column or a value that is not
  /// a number, bool or string; diffuse::FileError if the write fails.
  void log(const MetricsRow& row);

  /// The file written.
  const std::filesystem::path& path() const { return path_; }
  /// The format in use.
  MetricsFormat format() const { return format_; }
  /// The number of rows this logger wrote (not those already in a continued file).
  std::int64_t rows() const { return rows_; }  // rows logged by this logger

 private:
  std::filesystem::path path_;
  MetricsFormat format_;
  std::FILE* file_ = nullptr;
  std::vector<std::string> columns_;
  bool header_written_ = false;
  std::int64_t rows_ = 0;
};

/// Every row of a metrics file (CSV or JSON lines, by extension or `format`). A CSV row lists
/// its metrics in column order, a JSON-lines row in name order. A torn last line is ignored; a
/// malformed earlier line (in JSON lines, one that is not an object) is a FileError naming the
/// file and line.
std::vector<MetricsRow> read_metrics(const std::filesystem::path& path,
                                     std::optional<MetricsFormat> format = std::nullopt);

}  // namespace diffuse::training

#ifndef DIFFUSE_PRECOMPILED
#include "diffuse/training/metrics-inl.hpp"
#endif

/// @file
/// Shapes: a list of extents, row-major. Helpers to print, count, normalise axes and broadcast.
#pragma once
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "diffuse/core/error.hpp"

namespace diffuse {

/// The extents of a tensor, outermost first (like torch.Size); {} is a scalar's.
using Shape = std::vector<std::int64_t>;

/// "[2, 3, 4]": shapes as error messages print them.
inline std::string to_string(const Shape& s) {
  std::ostringstream os;
  os << '[';
  for (std::size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << ']';
  return os.str();
}

/// Number of elements (1 for a scalar's empty shape); throws diffuse::Error on a negative extent
/// or when the count overflows.
inline std::int64_t numel_of(const Shape& s) {
  std::int64_t n = 1;
  bool overflow = false;
  for (auto d : s) {
    if (d < 0) throw Error("negative extent in shape " + to_string(s));
    overflow = overflow || __builtin_mul_overflow(n, d, &n);
  }
  // (Once a zero extent has made the product 0, later extents cannot overflow it.)
  if (overflow) throw Error("shape " + to_string(s) + " has too many elements");
  return n;
}

/// Maps a possibly negative axis into [0, ndim); throws when out of range.
inline std::int64_t normalize_axis(std::int64_t axis, std::int64_t ndim) {
  std::int64_t a = axis < 0 ? axis + ndim : axis;
  if (a < 0 || a >= ndim)
    throw Error("axis " + std::to_string(axis) + " is out of range for a tensor with " +
                std::to_string(ndim) + " dimensions");
  return a;
}

/// NumPy broadcasting of two shapes; throws naming both when they do not broadcast.
inline Shape broadcast_shapes(const Shape& a, const Shape& b) {
  const std::size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (std::size_t i = 0; i < n; ++i) {
    std::int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    std::int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1)
      throw Error("shapes " + to_string(a) + " and " + to_string(b) + " cannot be broadcast together");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

/// Row-major strides (in elements).
inline Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  std::int64_t acc = 1;
  for (std::size_t i = s.size(); i-- > 0;) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

}  // namespace diffuse

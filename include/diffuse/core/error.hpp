/// @file
/// The one exception type of diffuse: every user-reachable failure throws diffuse::Error
/// (or a subclass) with a message that names the file, key or shapes involved.
#pragma once
#include <stdexcept>
#include <string>

namespace diffuse {

/// The exception diffuse throws for a failure a user can cause (a std::runtime_error).
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Thrown when a file is missing, truncated or malformed.
class FileError : public Error {
 public:
  using Error::Error;
};

/// Inside a catch block: throws the exception being handled again with `prefix` before its
/// message and of the same type (Error or FileError), e.g. to name the file a failing value came
/// from. Any other exception is rethrown unchanged.
[[noreturn]] inline void rethrow_with_prefix(const std::string& prefix) {
  try {
    throw;
  } catch (const FileError& e) {
    throw FileError(prefix + e.what());
  } catch (const Error& e) {
    throw Error(prefix + e.what());
  }
}

}  // namespace diffuse

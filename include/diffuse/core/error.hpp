// The one exception type of diffuse: every user-reachable failure throws diffuse::Error
// (or a subclass) with a message that names the file, key or shapes involved.
#pragma once
#include <stdexcept>
#include <string>

namespace diffuse {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Thrown when a file is missing, truncated or malformed.
class FileError : public Error {
 public:
  using Error::Error;
};

}  // namespace diffuse

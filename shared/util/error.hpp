#pragma once
// One exception type for everything layerbus rejects: a bad file, message, flag or prompt. The
// message always names what was wrong so it can be shown to the user as is.
#include <stdexcept>
#include <string>

namespace lb {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace lb

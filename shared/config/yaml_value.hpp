#pragma once
// Reading one YAML value with an error that names the file and key (internal to shared/config).
#include <yaml-cpp/yaml.h>

#include <string>

#include "util/bytes.hpp"
#include "util/error.hpp"

namespace lb::config_detail {

template <typename T>
T get(const YAML::Node& n, const std::string& where) {
  try {
    return n.as<T>();
  } catch (const YAML::Exception&) {
    throw Error(where + " has the wrong type");
  }
}

// A size such as "6GiB" or a plain number of bytes.
inline uint64_t get_bytes(const YAML::Node& n, const std::string& where) {
  try {
    return parse_bytes(get<std::string>(n, where));
  } catch (const Error& e) {
    throw Error(where + ": " + e.what());
  }
}

// The file's top-level map; throws naming the file when it cannot be read or is not a map.
inline YAML::Node load_map(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    throw Error(path + ": " + e.what());
  }
  if (!root.IsMap()) throw Error(path + ": expected a map of settings");
  return root;
}

}  // namespace lb::config_detail

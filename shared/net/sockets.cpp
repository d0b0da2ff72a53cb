#include "net/sockets.hpp"

namespace lb {

namespace {
constexpr int64_t kHardCapSlack = 1 << 20;
}

zmq::socket_t make_socket(zmq::context_t& ctx, zmq::socket_type type, size_t max_message_bytes) {
  zmq::socket_t s(ctx, type);
  s.set(zmq::sockopt::linger, 0);
  s.set(zmq::sockopt::maxmsgsize, int64_t(max_message_bytes) + kHardCapSlack);
  return s;
}

std::string last_endpoint(zmq::socket_t& s) {
  return s.get(zmq::sockopt::last_endpoint);
}

std::string with_host(const std::string& endpoint, const std::string& host, bool only_wildcard) {
  const std::string prefix = "tcp://";
  const size_t colon = endpoint.rfind(':');
  if (endpoint.compare(0, prefix.size(), prefix) != 0 || colon == std::string::npos ||
      colon < prefix.size()) {
    return endpoint;
  }
  const std::string h = endpoint.substr(prefix.size(), colon - prefix.size());
  const bool wildcard = h == "0.0.0.0" || h == "*" || h == "[::]";
  return wildcard || !only_wildcard ? prefix + host + endpoint.substr(colon) : endpoint;
}

bool send_frame(zmq::socket_t& s, const std::string& bytes, bool more) {
  try {
    auto r = s.send(zmq::buffer(bytes), more ? zmq::send_flags::sndmore : zmq::send_flags::none);
    return r.has_value();
  } catch (const zmq::error_t& e) {
    if (e.num() == EHOSTUNREACH) return false;
    throw;
  }
}

}  // namespace lb

#pragma once
// ZeroMQ socket set-up shared by broker, stage and client: every socket gets the same limits and
// shutdown behaviour, so a hostile peer cannot make any process buffer unbounded data.
#include <string>
#include <zmq.hpp>

namespace lb {

// A socket with linger 0 (shutdown never blocks on unsent data) and a hard frame-size cap a
// little above max_message_bytes: frames between the two reach the application, which rejects
// them with a logged error; larger ones make ZeroMQ drop the connection before allocating.
zmq::socket_t make_socket(zmq::context_t& ctx, zmq::socket_type type, size_t max_message_bytes);

// The endpoint a socket is actually bound to (resolves "tcp://host:*" to the chosen port).
std::string last_endpoint(zmq::socket_t& s);

// The endpoint with its host replaced ("tcp://0.0.0.0:5556" -> "tcp://HOST:5556"): what other
// machines connect to. With only_wildcard, a concrete host is left as it is.
std::string with_host(const std::string& endpoint, const std::string& host, bool only_wildcard);

// Sends one frame; returns false when ZeroMQ could not route it (a ROUTER peer that is gone).
bool send_frame(zmq::socket_t& s, const std::string& bytes, bool more = false);

}  // namespace lb

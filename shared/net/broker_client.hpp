#pragma once
// A client's side of the control channel: one DEALER connected to the broker (used by the
// `layerbus` commands and by the multi-process tests).
#include <chrono>
#include <string>

#include <zmq.hpp>

#include "wire/messages.hpp"

namespace lb {

class BrokerClient {
 public:
  explicit BrokerClient(const std::string& endpoint);
  void send(const std::string& bytes);
  // Waits for the next message; throws lb::Error when nothing arrives within the timeout.
  wire::Envelope receive(std::chrono::milliseconds timeout);
  // Sends a query and returns its reply, turning an `error` reply into an lb::Error.
  wire::Envelope ask(const std::string& bytes, std::chrono::milliseconds timeout);

 private:
  std::string endpoint_;
  wire::Limits limits_;
  zmq::context_t ctx_;
  zmq::socket_t socket_;
};

}  // namespace lb

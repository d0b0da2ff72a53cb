#include "net/broker_client.hpp"

#include "net/sockets.hpp"

namespace lb {

BrokerClient::BrokerClient(const std::string& endpoint)
    : endpoint_(endpoint),
      ctx_(1),
      socket_(make_socket(ctx_, zmq::socket_type::dealer, limits_.max_message_bytes)) {
  socket_.connect(endpoint);
}

void BrokerClient::send(const std::string& bytes) {
  send_frame(socket_, bytes);
}

wire::Envelope BrokerClient::receive(std::chrono::milliseconds timeout) {
  zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
  zmq::poll(&item, 1, timeout);
  zmq::message_t msg;
  if (!(item.revents & ZMQ_POLLIN) || !socket_.recv(msg, zmq::recv_flags::dontwait)) {
    throw Error("no answer from the broker at " + endpoint_ + " within " +
                std::to_string(timeout.count() / 1000) + " s");
  }
  return wire::Envelope::parse(msg.data(), msg.size(), limits_);
}

wire::Envelope BrokerClient::ask(const std::string& bytes, std::chrono::milliseconds timeout) {
  send(bytes);
  wire::Envelope env = receive(timeout);
  if (env.type() == "error") {
    wire::ErrorMsg e;
    wire::decode(env, e);
    throw Error("broker: " + e.msg);
  }
  return env;
}

}  // namespace lb

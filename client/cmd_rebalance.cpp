// `layerbus rebalance | drain | set-budget | exclude | include`: change the plan while the
// cluster serves. Each prints the plan before and after.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "cluster_state.hpp"
#include "commands.hpp"
#include "net/broker_client.hpp"
#include "util/bytes.hpp"

namespace lb::client {

namespace {

void print_bar(const char* label, const std::string& json) {
  const nlohmann::json j = nlohmann::json::parse(json);
  if (j["plan"].is_null()) {
    std::printf("%s none\n", label);
    return;
  }
  std::printf("%s epoch %llu, %s: %s\n", label, (unsigned long long)j["epoch"].get<uint64_t>(),
              j["plan"]["strategy"].get<std::string>().c_str(),
              j["plan"]["bar"].get<std::string>().c_str());
}

struct ControlArgs {
  std::string broker;
  wire::Control msg;
  std::string budget;
};

void add_control(CLI::App& app, const std::string& name, const std::string& op,
                 const std::string& help, bool takes_node, bool takes_budget) {
  auto a = std::make_shared<ControlArgs>();
  a->msg.op = op;
  CLI::App* cmd = app.add_subcommand(name, help);
  cmd->add_option("--broker", a->broker, "Broker control endpoint");
  if (takes_node) cmd->add_option("node", a->msg.node, "Node id")->required();
  if (takes_budget) cmd->add_option("size", a->budget, "New budget, e.g. 4GiB")->required();
  if (op == "rebalance")
    cmd->add_option("--strategy", a->msg.strategy,
                    "memory | uniform | priority | compute | balanced");
  cmd->callback([a] {
    if (!a->budget.empty()) a->msg.budget = parse_bytes(a->budget);
    BrokerClient client(resolve_broker(a->broker));
    wire::PlanChange r;
    wire::decode(client.ask(wire::encode(a->msg), std::chrono::seconds(30)), r);
    print_bar("old plan:", r.old_plan);
    print_bar("new plan:", r.new_plan);
  });
}

}  // namespace

void add_rebalance(CLI::App& app) {
  add_control(app, "rebalance", "rebalance",
              "Plan again (optionally with another strategy) and move layers live", false, false);
  add_control(app, "drain", "drain", "Move every layer off a node, then let it leave", true, false);
  add_control(app, "set-budget", "set_budget", "Change a node's memory budget and rebalance", true,
              true);
  add_control(app, "exclude", "exclude", "Give a node no layers (rebalances)", true, false);
  add_control(app, "include", "include", "Let an excluded node hold layers again (rebalances)",
              true, false);
}

}  // namespace lb::client

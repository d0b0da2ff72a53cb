// `layerbus status` and `layerbus plan`: what the broker has, and what a strategy would give.
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cluster_state.hpp"
#include "commands.hpp"
#include "net/broker_client.hpp"
#include "plan/planner.hpp"
#include "util/bytes.hpp"

namespace lb::client {

namespace {

constexpr std::chrono::seconds kTimeout{10};

void print_plan(const nlohmann::json& plan) {
  std::printf("plan      %s, %d layers\n", plan["strategy"].get<std::string>().c_str(),
              plan["n_layers"].get<int>());
  std::printf("          %s\n", plan["bar"].get<std::string>().c_str());
  for (const auto& s : plan["stages"]) {
    std::printf("  %-16s layers %3d-%-3d %s%s  holds %s, may fill %s\n",
                s["node"].get<std::string>().c_str(), s["begin"].get<int>(),
                s["end"].get<int>() - 1, s["embedding"].get<bool>() ? "+embd" : "     ",
                s["head"].get<bool>() ? "+head" : "     ", format_bytes(s["total_bytes"]).c_str(),
                format_bytes(s["budget_bytes"]).c_str());
  }
  for (const auto& u : plan["unused"])
    std::printf("  %-16s unused\n", u.get<std::string>().c_str());
}

}  // namespace

void add_status(CLI::App& app) {
  struct Args {
    std::string broker;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd =
      app.add_subcommand("status", "Show the broker's nodes, plan, requests and throughput");
  cmd->add_option("--broker", a->broker, "Broker control endpoint");
  cmd->add_flag("--json", a->json, "Print JSON");
  cmd->callback([a] {
    BrokerClient client(resolve_broker(a->broker));
    wire::StatusReply r;
    wire::decode(client.ask(wire::encode(wire::StatusQuery{}), kTimeout), r);
    if (a->json) {
      std::cout << r.json << std::endl;
      return;
    }
    const nlohmann::json j = nlohmann::json::parse(r.json);
    std::printf("%-14s %-10s %9s %9s %9s %9s %19s %8s %9s  %-7s %s\n", "node", "host", "budget",
                "weights", "kv", "rss", "cgroup used/limit", "compute", "thr/cores", "layers",
                "state");
    for (const auto& n : j["nodes"]) {
      std::string layers = n.contains("layers") ? std::to_string(n["layers"][0].get<int>()) + "-" +
                                                      std::to_string(n["layers"][1].get<int>() - 1)
                                                : "-";
      const uint64_t cg_limit = n["cgroup_limit"], cg_usage = n["cgroup_usage"];
      const std::string cgroup = cg_usage == 0 ? "-"
                                               : format_bytes(cg_usage) + "/" +
                                                     (cg_limit ? format_bytes(cg_limit) : "max");
      const std::string threads =
          std::to_string(n["threads"].get<int>()) + "/" + std::to_string(n["cores"].get<int>());
      std::printf("%-14s %-10s %9s %9s %9s %9s %19s %8.1f %9s  %-7s %s\n",
                  n["id"].get<std::string>().c_str(), n["host"].get<std::string>().c_str(),
                  format_bytes(n["budget"]).c_str(), format_bytes(n["weights"]).c_str(),
                  format_bytes(n["kv"]).c_str(), format_bytes(n["rss"]).c_str(), cgroup.c_str(),
                  n["compute"].get<double>(), threads.c_str(), layers.c_str(),
                  n["state"].get<std::string>().c_str());
    }
    for (const auto& n : j["nodes"]) {
      if (n["state"] == "failed" && n.contains("error"))
        std::printf("  %s failed: %s\n", n["id"].get<std::string>().c_str(),
                    n["error"].get<std::string>().c_str());
    }
    if (j["plan"].is_null()) {
      std::printf(
          "plan      none yet%s\n",
          j.contains("plan_error") ? (": " + j["plan_error"].get<std::string>()).c_str() : "");
    } else {
      std::printf("model     %s (%s)\n", j["model"]["name"].get<std::string>().c_str(),
                  j["model"]["why"].get<std::string>().c_str());
      std::printf("epoch     %llu, %s\n", (unsigned long long)j["epoch"].get<uint64_t>(),
                  j["rebalancing"].get<bool>() ? "rebalancing"
                  : j["serving"].get<bool>()   ? "serving"
                                               : "loading");
      print_plan(j["plan"]);
      if (j.contains("last_migration")) {
        const auto& m = j["last_migration"];
        std::printf(
            "last move epoch %llu (%s): drain %.0f ms, load %.0f ms; %d request(s) kept their KV "
            "caches (%s moved), %d replayed\n",
            (unsigned long long)m["epoch"].get<uint64_t>(), m["why"].get<std::string>().c_str(),
            m["drain_s"].get<double>() * 1e3, m["load_s"].get<double>() * 1e3,
            m["moved"].get<int>(), format_bytes(m["kv_bytes"]).c_str(), m["replayed"].get<int>());
      }
    }
    std::printf("requests  %zu", j["requests"].size());
    for (const auto& q : j["requests"]) {
      std::printf("  [#%llu %s, %d+%d tokens]", (unsigned long long)q["id"].get<uint64_t>(),
                  q["state"].get<std::string>().c_str(), q["prompt_tokens"].get<int>(),
                  q["generated"].get<int>());
    }
    std::printf("\nthroughput %.1f tokens/s (last 10 s)\n", j["tokens_per_second"].get<double>());
    const auto& st = j["steps"];
    const double sent = st["sent"].get<double>();
    std::printf(
        "steps     %.0f sent (%.0f of them looped by the last stage), %.2f rows each on average,\n"
        "          up to %d in the chain at once\n",
        sent, st["looped"].get<double>(), sent > 0 ? st["rows"].get<double>() / sent : 0.0,
        st["max_inflight"].get<int>());
  });
}

void add_plan(CLI::App& app) {
  struct Args {
    std::string broker, strategy, nodes;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd =
      app.add_subcommand("plan", "Show the plan a strategy would give, changing nothing");
  cmd->add_option("--broker", a->broker, "Broker control endpoint");
  cmd->add_option("--strategy", a->strategy,
                  "memory | uniform | priority | compute | balanced (default: the broker's)");
  cmd->add_option(
      "--nodes", a->nodes,
      "Hypothetical node budgets in chain order, e.g. 8GiB,16GiB (default: the registered nodes)");
  cmd->add_flag("--json", a->json, "Print JSON");
  cmd->callback([a] {
    wire::PlanQuery q;
    q.strategy = a->strategy;
    if (!q.strategy.empty()) parse_strategy(q.strategy);
    size_t start = 0;
    while (!a->nodes.empty() && start <= a->nodes.size()) {
      const size_t comma = a->nodes.find(',', start);
      q.nodes.push_back(parse_bytes(a->nodes.substr(start, comma - start)));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    BrokerClient client(resolve_broker(a->broker));
    wire::PlanReply r;
    wire::decode(client.ask(wire::encode(q), kTimeout), r);
    if (a->json) {
      std::cout << r.json << std::endl;
      return;
    }
    const nlohmann::json j = nlohmann::json::parse(r.json);
    std::printf("model     %s\n", j["model"].get<std::string>().c_str());
    if (j["plan"].is_null()) throw Error("no plan: " + j["error"].get<std::string>());
    print_plan(j["plan"]);
  });
}

}  // namespace lb::client

// `layerbus generate`: send a prompt to the broker and stream the tokens as they come.
#include <csignal>
#include <iostream>
#include <memory>

#include "cluster_state.hpp"
#include "commands.hpp"
#include "json_output.hpp"
#include "net/broker_client.hpp"
#include "sampling_flags.hpp"

namespace lb::client {

namespace {

volatile std::sig_atomic_t g_interrupted = 0;
void on_interrupt(int) {
  g_interrupted = 1;
}

// How long to wait for the next message: the first may wait for stages to register and load.
constexpr std::chrono::milliseconds kPoll{200};
constexpr std::chrono::seconds kPatience{600};

struct GenerateArgs {
  std::string broker;
  wire::Generate req;
  SamplingParams sampling;
  bool json = false;
};

int run_generate(const GenerateArgs& a) {
  BrokerClient client(resolve_broker(a.broker));
  client.send(wire::encode(a.req));
  std::signal(SIGINT, on_interrupt);
  GenerationReport report;
  uint64_t req = 0;
  size_t printed = 0;
  auto deadline = std::chrono::steady_clock::now() + kPatience;
  for (;;) {
    if (g_interrupted && req != 0) {
      client.send(wire::encode(wire::Cancel{req}));
      g_interrupted = 0;
    }
    std::optional<wire::Envelope> env;
    try {
      env = client.receive(kPoll);
    } catch (const Error&) {
      if (std::chrono::steady_clock::now() > deadline) throw Error("the broker stopped answering");
      continue;
    }
    deadline = std::chrono::steady_clock::now() + kPatience;
    const std::string& type = env->type();
    if (type == "accepted") {
      wire::Accepted m;
      wire::decode(*env, m);
      req = m.req;
      report.prompt_tokens = m.prompt_tokens;
    } else if (type == "token") {
      wire::TokenMsg m;
      wire::decode(*env, m);
      report.logprobs.push_back(m.lp);
      if (!a.json) {
        std::cout << m.text << std::flush;
        printed += m.text.size();
      }
    } else if (type == "done") {
      wire::Done m;
      wire::decode(*env, m);
      report.tokens = m.tokens;
      report.text = m.text;
      report.prompt_seconds = m.prompt_s;
      report.decode_seconds = m.decode_s;
      report.decode_steps = int64_t(m.decode_steps);
      report.stop_reason = m.reason;
      if (a.json) {
        std::cout << dump(to_json(report)) << std::endl;
      } else {
        // Text held back until the end (an unfinished character or stop-string prefix).
        std::cout << (printed < m.text.size() ? m.text.substr(printed) : "") << std::endl;
      }
      return m.reason == "cancelled" ? 130 : 0;
    } else if (type == "error") {
      wire::ErrorMsg m;
      wire::decode(*env, m);
      throw Error("broker: " + m.msg);
    }
  }
}

}  // namespace

void add_generate(CLI::App& app) {
  auto a = std::make_shared<GenerateArgs>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate text through the broker's pipeline");
  cmd->add_option("--broker", a->broker,
                  "Broker control endpoint (default: $LAYERBUS_BROKER, the cluster `up` started, "
                  "or tcp://127.0.0.1:5555)");
  cmd->add_option("--prompt", a->req.prompt, "Prompt text")->required();
  cmd->add_option("-n,--n-predict", a->req.n, "Tokens to generate")->capture_default_str();
  add_sampling_flags(cmd, a->sampling);
  cmd->add_option("--stop", a->req.stop, "Stop at this text (repeatable)");
  cmd->add_flag("--json", a->json,
                "Print one JSON object (as `layerbus run --json`) instead of streaming");
  cmd->callback([a] {
    validate(a->sampling);
    a->req.temp = a->sampling.temperature;
    a->req.top_k = a->sampling.top_k;
    a->req.top_p = a->sampling.top_p;
    a->req.min_p = a->sampling.min_p;
    a->req.rep = a->sampling.repeat_penalty;
    a->req.seed = a->sampling.seed;
    const int code = run_generate(*a);
    if (code != 0) std::exit(code);
  });
}

}  // namespace lb::client

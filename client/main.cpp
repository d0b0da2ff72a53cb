// layerbus: the command-line client. Subcommands run a model in one process, inspect and make
// GGUF files, and talk to a broker.
#include <iostream>

#include "commands.hpp"
#include "util/error.hpp"

int main(int argc, char** argv) {
  CLI::App app{"layerbus: run one LLM across several machines"};
  app.require_subcommand(1);
  lb::client::add_run(app);
  lb::client::add_tokenize(app);
  lb::client::add_info(app);
  lb::client::add_synth(app);
  lb::client::add_generate(app);
  lb::client::add_status(app);
  lb::client::add_plan(app);
  lb::client::add_up(app);
  lb::client::add_down(app);
  lb::client::add_rebalance(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::cerr << "layerbus: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

#pragma once
// The `layerbus` subcommands: each registers its flags on the CLI11 app and runs when chosen.
#include <CLI/CLI.hpp>

namespace lb::client {

void add_run(CLI::App& app);
void add_tokenize(CLI::App& app);
void add_info(CLI::App& app);
void add_synth(CLI::App& app);
void add_generate(CLI::App& app);
void add_status(CLI::App& app);
void add_plan(CLI::App& app);
void add_up(CLI::App& app);
void add_down(CLI::App& app);
void add_rebalance(CLI::App& app);

}  // namespace lb::client

// `layerbus tokenize`: UTF-8 text on stdin -> token ids on one line.
#include <iostream>
#include <iterator>
#include <memory>

#include "commands.hpp"
#include "gguf/gguf_file.hpp"
#include "tokenizer/tokenizer.hpp"

namespace lb::client {

void add_tokenize(CLI::App& app) {
  struct Args {
    std::string model;
    bool bos = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Print the token ids of the text on stdin");
  cmd->add_option("--model", a->model, "GGUF model (or vocabulary-only) file")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_flag("--bos", a->bos, "Add BOS/EOS as the model's metadata says");
  cmd->callback([a] {
    GgufFile file(a->model);
    Tokenizer tok(file);
    std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    const std::vector<int32_t> ids = tok.encode(text, a->bos);
    for (size_t i = 0; i < ids.size(); ++i) std::cout << (i ? " " : "") << ids[i];
    std::cout << "\n";
  });
}

}  // namespace lb::client

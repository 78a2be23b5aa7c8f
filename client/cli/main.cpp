// tensorslm: the command-line tool. Subcommands come from the command registry
// (cmd_*.cpp files register themselves); errors are one line on stderr and exit code 1.
#include <algorithm>
#include <iostream>

#include "cli/command_registry.h"

int main(int argc, char** argv) {
  CLI::App app{"tensorslm: tensor-network compression of language-model embeddings and weights"};
  app.set_version_flag("--version", std::string("tensorslm ") + TSM_VERSION);
  app.require_subcommand(1);
  auto groups = tsm::cli::command_groups();
  std::sort(groups.begin(), groups.end(), [](const auto& a, const auto& b) { return a.order < b.order; });
  for (const auto& g : groups) g.add(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

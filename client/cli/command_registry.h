// Subcommands of the `tensorslm` CLI register themselves here (one file per command group), so
// adding a command group touches no other file. main.cpp builds the CLI11 app from the registry.
// Convention: a command's callback throws tsm::Error (or std::exception) on failure; main prints
// "error: <message>" as one line on stderr and exits 1.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <vector>

namespace tsm::cli {

struct CommandGroup {
  int order;                                  ///< position in `tensorslm --help`
  std::function<void(CLI::App&)> add;         ///< adds subcommands to the root app
};

inline std::vector<CommandGroup>& command_groups() {
  static std::vector<CommandGroup> groups;
  return groups;
}

/// `static tsm::cli::RegisterCommands reg{10, [](CLI::App& app) { ... }};` in a command file.
struct RegisterCommands {
  RegisterCommands(int order, std::function<void(CLI::App&)> add) { command_groups().push_back({order, std::move(add)}); }
};

}  // namespace tsm::cli

#include "cli/cli_args.h"

#include <algorithm>
#include <filesystem>

#include "common/error.h"
#include "common/sha256.h"

namespace tsm::cli {
namespace fs = std::filesystem;
using nlohmann::json;

void add_params(json& params, const std::vector<std::string>& items) {
  for (const auto& kv : items) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) throw ParamError("--param", "'" + kv + "' is not of the form key=value");
    const std::string k = kv.substr(0, eq), v = kv.substr(eq + 1);
    if (params.contains(k)) throw ParamError(k, "given twice");
    json j = json::parse(v, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() && v.find(',') != std::string::npos) j = json::parse("[" + v + "]", nullptr, false);
    params[k] = j.is_discarded() ? json(v) : j;
  }
}

std::string source_sha256(const std::string& path) {
  if (!fs::is_directory(path)) return sha256_file(path);
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(path))
    if (e.is_regular_file()) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  std::string manifest;
  for (const auto& n : names) manifest += n + " " + sha256_file((fs::path(path) / n).string()) + "\n";
  return sha256_hex(manifest);
}

}  // namespace tsm::cli

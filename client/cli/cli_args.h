// Argument helpers shared by the CLI's command groups: `--param key=value` lists and the sha256 of an
// input path. Pure functions; errors are tsm::ParamError / tsm::Error (one line in main).
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace tsm::cli {

/// Adds each "key=value" to `params`: the value is read as JSON when it parses (numbers, [lists],
/// objects, true/false), as a list of numbers when it is comma-separated numbers ("16,16,16"), else
/// as a string. A key given twice or an item without '=' is a ParamError.
void add_params(nlohmann::json& params, const std::vector<std::string>& items);

/// sha256 of an input: a file's bytes, or for a directory the sha256 of its manifest
/// ("<name> <sha256>\n" for each regular file, sorted by name).
std::string source_sha256(const std::string& path);

}  // namespace tsm::cli

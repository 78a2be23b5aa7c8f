// The dashboard's static files (web/, built by esbuild): GET / is index.html, GET /assets/{file}
// one bundled file. Invariant: only regular files directly inside <web dir> (index.html) and
// <web dir>/assets/ whose names match [A-Za-z0-9][A-Za-z0-9_.-]* (no "..") and whose extension has a
// known MIME type are served, and only when their canonical path still lies in that directory (a
// symlink out of it is a 404): nothing outside the web dir can be read.
// The web dir is Config::web_dir (config key web_dir, env TENSORSLM_WEB_DIR, flag --web-dir), else
// <executable dir>/../share/tensorslm/web.
#pragma once
#include <optional>
#include <string>

#include "app.h"

namespace tsm::server {

/// The directory the dashboard is served from (`configured`, else beside the executable).
std::string resolve_web_dir(const std::string& configured);
/// Canonical path of `name` inside `dir` when it is a servable regular file there; nullopt otherwise.
std::optional<std::string> web_file_in(const std::string& dir, const std::string& name);
/// MIME type of a servable file name ("" = not served).
std::string web_mime_type(const std::string& name);

void get_web_index(App& app, RequestPtr req, Respond respond);
void get_web_asset(App& app, RequestPtr req, Respond respond);

}  // namespace tsm::server

// GET / and GET /assets/{file}: the dashboard's files with a strict Content-Security-Policy,
// nosniff, and cache headers (content-hashed assets immutable, index.html revalidated each time).
// Opening a file is a stat and an open on the I/O thread; the body streams from the file.
#include "api/web_api.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "api/routes.h"
#include "http/problem.h"

namespace tsm::server {

namespace fs = std::filesystem;

namespace {

// No inline script or style, nothing from another origin; the page talks only to this server's /v1.
// uPlot sets element styles through the CSSOM, which style-src does not restrict.
constexpr const char* kCsp =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

bool safe_name(const std::string& n) {
  if (n.empty() || n.size() > 200 || !std::isalnum(static_cast<unsigned char>(n[0]))) return false;
  for (char c : n)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') return false;
  return n.find("..") == std::string::npos;
}

/// esbuild's entry and chunk names carry an 8-character content hash: [name]-[HASH].ext.
/// Checked by hand (no regex on the I/O thread); `n` has passed safe_name's character set already.
bool is_hashed(const std::string& n) {
  const size_t dot = n.rfind('.');
  if (dot == std::string::npos || dot < 10 || n[dot - 9] != '-') return false;
  const std::string ext = n.substr(dot + 1);
  static const char* const kExt[] = {"js", "css", "map", "svg", "png", "woff2"};
  if (std::none_of(std::begin(kExt), std::end(kExt), [&](const char* e) { return ext == e; })) return false;
  for (size_t i = dot - 8; i < dot; ++i)
    if (!std::isupper(static_cast<unsigned char>(n[i])) && !std::isdigit(static_cast<unsigned char>(n[i]))) return false;
  for (size_t i = 0; i + 9 < dot; ++i)
    if (!std::isalnum(static_cast<unsigned char>(n[i])) && n[i] != '_' && n[i] != '.') return false;
  return true;
}

void not_built(const std::string& dir, Respond& respond) {
  respond(problem(http::status::not_found,
                  "the web dashboard is not built (no index.html in " + dir +
                      "): run `make run` or `cmake --build --preset release --target tensorslm-web` (needs nodejs and npm), "
                      "or point it at a build with --web-dir DIR (config web_dir, env TENSORSLM_WEB_DIR)"));
}

void send_file(const std::string& path, const std::string& name, bool immutable, Respond& respond) {
  FileResponse r{http::status::ok, 11};
  boost::beast::error_code ec;
  r.body().open(path.c_str(), boost::beast::file_mode::scan, ec);
  if (ec) throw HttpError(http::status::not_found, "no file '" + name + "'");
  r.set(http::field::content_type, web_mime_type(name));
  r.set(http::field::cache_control, immutable ? "public, max-age=31536000, immutable" : "no-cache");
  r.set("Content-Security-Policy", kCsp);
  r.set("X-Content-Type-Options", "nosniff");
  r.set("Referrer-Policy", "no-referrer");
  r.set("X-Frame-Options", "DENY");
  r.prepare_payload();
  respond(std::move(r));
}

}  // namespace

std::string resolve_web_dir(const std::string& configured) {
  if (!configured.empty()) return configured;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return "share/tensorslm/web";
  return (exe.parent_path().parent_path() / "share" / "tensorslm" / "web").string();
}

std::string web_mime_type(const std::string& name) {
  const auto dot = name.rfind('.');
  if (dot == std::string::npos) return "";
  const std::string ext = name.substr(dot + 1);
  if (ext == "html") return "text/html; charset=utf-8";
  if (ext == "js") return "text/javascript; charset=utf-8";
  if (ext == "css") return "text/css; charset=utf-8";
  if (ext == "map" || ext == "json") return "application/json";
  if (ext == "svg") return "image/svg+xml";
  if (ext == "png") return "image/png";
  if (ext == "ico") return "image/x-icon";
  if (ext == "woff2") return "font/woff2";
  return "";
}

std::optional<std::string> web_file_in(const std::string& dir, const std::string& name) {
  if (!safe_name(name) || web_mime_type(name).empty()) return std::nullopt;
  std::error_code ec;
  const fs::path base = fs::canonical(dir, ec);
  if (ec) return std::nullopt;
  const fs::path p = fs::canonical(base / name, ec);  // resolves symlinks: one out of dir fails below
  if (ec || p.parent_path() != base || !fs::is_regular_file(p, ec)) return std::nullopt;
  return p.string();
}

void get_web_index(App& app, RequestPtr req, Respond respond) {
  const std::string dir = resolve_web_dir(app.config.web_dir);
  auto f = web_file_in(dir, "index.html");
  if (!f) return not_built(dir, respond);
  send_file(*f, "index.html", false, respond);
}

void get_web_asset(App& app, RequestPtr req, Respond respond) {
  const std::string dir = resolve_web_dir(app.config.web_dir);
  const std::string& name = req->params[0];
  if (!web_file_in(dir, "index.html")) return not_built(dir, respond);
  auto f = web_file_in(dir + "/assets", name);
  if (!f) throw HttpError(http::status::not_found, "no dashboard asset '" + name + "'");
  send_file(*f, name, is_hashed(name), respond);
}

}  // namespace tsm::server

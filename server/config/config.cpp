#include "config/config.h"

#include <algorithm>
#include <cctype>

#include <boost/asio/ip/address.hpp>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"

namespace tsm::server {
namespace {

using nlohmann::json;

template <class T>
void get(const json& j, const char* key, T& out) {
  if (!j.contains(key)) return;
  try {
    out = j.at(key).get<T>();
  } catch (const json::exception& e) {
    throw Error(std::string("config key '") + key + "': " + e.what());
  }
}

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return (v && *v) ? v : nullptr;
}

}  // namespace

bool Config::is_loopback() const {
  if (host == "localhost") return true;
  boost::system::error_code ec;
  auto a = boost::asio::ip::make_address(host, ec);
  return !ec && a.is_loopback();
}

void Config::validate() const {
  boost::system::error_code ec;
  if (host != "localhost") {
    boost::asio::ip::make_address(host, ec);
    if (ec) throw Error("listen: '" + host + "' is not an IP address");
  }
  if (io_threads < 1) throw Error("io_threads must be >= 1");
  if (workers < 1) throw Error("workers must be >= 1");
  if (queue_capacity < 1) throw Error("queue_capacity must be >= 1");
  if (upload_max_bytes < 1024) throw Error("upload_max_bytes must be >= 1024");
  if (body_max_bytes < 1024) throw Error("body_max_bytes must be >= 1024");
  if (header_timeout_s <= 0 || body_idle_timeout_s <= 0) throw Error("timeouts must be > 0");
  if (log_format != "text" && log_format != "json") throw Error("log_format must be text or json");
  for (const auto& t : tokens) {
    if (t.sha256.size() != 64 ||
        !std::all_of(t.sha256.begin(), t.sha256.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); }))
      throw Error("tokens[" + t.name + "].sha256 must be 64 hex characters");
    for (const auto& s : t.scopes)
      if (s != "admin" && s != "ci" && s != "device")
        throw Error("tokens[" + t.name + "].scopes: unknown scope '" + s + "' (admin, ci, device)");
  }
  if (!is_loopback() && tokens.empty())
    throw Error("refusing to listen on " + host +
                " without tokens: add bearer tokens to the config ('tokens') or listen on 127.0.0.1");
}

Config load_config_file(const std::string& path, Config c) {
  json j;
  try {
    j = json::parse(read_file(path, 1 << 20), nullptr, /*allow_exceptions=*/true, /*ignore_comments=*/true);
  } catch (const json::exception& e) {
    throw Error("config " + path + ": " + e.what());
  }
  if (j.contains("listen")) apply_listen(c, j.at("listen").get<std::string>());
  get(j, "data_dir", c.data_dir);
  get(j, "io_threads", c.io_threads);
  get(j, "workers", c.workers);
  get(j, "codec_threads", c.codec_threads);
  get(j, "queue_capacity", c.queue_capacity);
  get(j, "upload_max_bytes", c.upload_max_bytes);
  get(j, "body_max_bytes", c.body_max_bytes);
  get(j, "header_timeout_s", c.header_timeout_s);
  get(j, "body_idle_timeout_s", c.body_idle_timeout_s);
  get(j, "max_wait_s", c.max_wait_s);
  get(j, "fsync_uploads", c.fsync_uploads);
  get(j, "log_format", c.log_format);
  get(j, "log_level", c.log_level);
  if (j.contains("tokens")) {
    c.tokens.clear();
    for (const auto& t : j.at("tokens")) {
      TokenConfig tc;
      get(t, "name", tc.name);
      get(t, "sha256", tc.sha256);
      get(t, "scopes", tc.scopes);
      c.tokens.push_back(tc);
    }
  }
  return c;
}

void apply_listen(Config& c, const std::string& listen) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0) throw Error("listen: expected HOST:PORT, got '" + listen + "'");
  std::string host = listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  char* end = nullptr;
  long port = std::strtol(listen.c_str() + colon + 1, &end, 10);
  if (*end != '\0' || port < 0 || port > 65535) throw Error("listen: bad port in '" + listen + "'");
  c.host = host;
  c.port = static_cast<uint16_t>(port);
}

void apply_env(Config& c) {
  if (auto v = env("TENSORSLM_LISTEN")) apply_listen(c, v);
  if (auto v = env("TENSORSLM_DATA_DIR")) c.data_dir = v;
  if (auto v = env("TENSORSLM_WORKERS")) c.workers = std::atoi(v);
  if (auto v = env("TENSORSLM_IO_THREADS")) c.io_threads = std::atoi(v);
  if (auto v = env("TENSORSLM_QUEUE_CAPACITY")) c.queue_capacity = std::atoi(v);
  if (auto v = env("TENSORSLM_UPLOAD_MAX_BYTES")) c.upload_max_bytes = std::strtoull(v, nullptr, 10);
  if (auto v = env("TENSORSLM_BODY_IDLE_TIMEOUT_S")) c.body_idle_timeout_s = std::atof(v);
  if (auto v = env("TENSORSLM_LOG_FORMAT")) c.log_format = v;
  if (auto v = env("TENSORSLM_LOG_LEVEL")) c.log_level = v;
}

}  // namespace tsm::server

#include "config/config.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>

#include <boost/asio/ip/address.hpp>
#include <cstdlib>
#include <fstream>
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

uint64_t env_u64(const char* name, const char* v) {
  char* end = nullptr;
  errno = 0;
  unsigned long long x = std::strtoull(v, &end, 10);
  if (*v == '-' || *end != '\0' || errno == ERANGE) throw Error(std::string(name) + ": '" + v + "' is not a byte count");
  return x;
}

double env_double(const char* name, const char* v) {
  char* end = nullptr;
  double x = std::strtod(v, &end);
  if (*end != '\0' || !std::isfinite(x)) throw Error(std::string(name) + ": '" + v + "' is not a number");
  return x;
}

bool env_bool(const char* name, const char* v) {
  std::string s = v;
  if (s == "true" || s == "1") return true;
  if (s == "false" || s == "0") return false;
  throw Error(std::string(name) + ": '" + s + "' is not true, false, 1 or 0");
}

/// A device id as reports name it ([A-Za-z0-9._-], 1-128), or such a prefix followed by '*' ("*" alone: any).
bool valid_device_pattern(const std::string& d) {
  std::string id = !d.empty() && d.back() == '*' ? d.substr(0, d.size() - 1) : d;
  if (id.empty()) return d == "*";
  if (id.size() > 128) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

}  // namespace

uint64_t Config::effective_tar_max_extracted_bytes() const {
  if (tar_max_extracted_bytes) return tar_max_extracted_bytes;
  return upload_max_bytes > UINT64_MAX / 2 ? UINT64_MAX : 2 * upload_max_bytes;
}

uint64_t Config::effective_tar_max_member_bytes() const {
  return tar_max_member_bytes ? tar_max_member_bytes : effective_tar_max_extracted_bytes();
}

uint64_t Config::effective_job_memory_max_bytes() const {
  if (job_memory_max_bytes) return job_memory_max_bytes;
  uint64_t avail = 0;
  if (std::ifstream f("/proc/meminfo"); f) {
    std::string key;
    uint64_t kib = 0;
    while (f >> key >> kib) {
      if (key == "MemTotal:") {
        avail = kib * 1024;
        break;
      }
      f.ignore(64, '\n');
    }
  }
  if (std::ifstream f("/sys/fs/cgroup/memory.max"); f) {  // cgroup v2; "max" = no limit
    std::string v;
    f >> v;
    if (!v.empty() && std::all_of(v.begin(), v.end(), [](char ch) { return ch >= '0' && ch <= '9'; })) {
      const uint64_t lim = std::stoull(v);
      if (avail == 0 || lim < avail) avail = lim;
    }
  }
  return avail ? avail / 4 * 3 : UINT64_MAX;
}

bool Config::store_is_postgres() const {
  return store.rfind("postgresql://", 0) == 0 || store.rfind("postgres://", 0) == 0 || store.find('=') != std::string::npos;
}

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
  if (tar_max_members < 1) throw Error("tar_max_members must be >= 1");
  if (!(tar_max_ratio >= 1)) throw Error("tar_max_ratio must be >= 1 (extracted bytes per compressed byte)");
  if (tar_max_extracted_bytes != 0 && tar_max_extracted_bytes < 1024)
    throw Error("tar_max_extracted_bytes must be >= 1024 (or 0: twice upload_max_bytes)");
  if (tar_max_member_bytes != 0 && tar_max_member_bytes < 1024)
    throw Error("tar_max_member_bytes must be >= 1024 (or 0: tar_max_extracted_bytes)");
  for (const auto& t : tokens) {
    if (t.sha256.size() != 64 ||
        !std::all_of(t.sha256.begin(), t.sha256.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); }))
      throw Error("tokens[" + t.name + "].sha256 must be 64 hex characters");
    for (const auto& s : t.scopes)
      if (s != "admin" && s != "ci" && s != "device" && s != "metrics")
        throw Error("tokens[" + t.name + "].scopes: unknown scope '" + s + "' (admin, ci, device, metrics)");
    const bool device = std::find(t.scopes.begin(), t.scopes.end(), "device") != t.scopes.end();
    if (!t.devices.empty() && !device)
      throw Error("tokens[" + t.name + "].devices: only a token with the device scope posts reports for devices");
    for (const auto& d : t.devices)
      if (!valid_device_pattern(d))
        throw Error("tokens[" + t.name + "].devices: '" + d +
                    "' is not a device id ([A-Za-z0-9._-], 1-128) or such a prefix ending in '*'");
  }
  if (role != "all" && role != "api" && role != "worker") throw Error("role must be all, api or worker (got '" + role + "')");
  if (role != "all" && !store_is_postgres())
    throw Error("role " + role + " needs a shared store: give --store postgresql://... (SQLite serves one process, role all)");
  if (!store.empty() && !store_is_postgres() && store.rfind("sqlite:", 0) != 0)
    throw Error("store: expected a postgresql:// URI, a libpq key=value string or sqlite:PATH");
  if (!(lease_s > 0)) throw Error("lease_s must be > 0");
  if (!(poll_s > 0)) throw Error("poll_s must be > 0");
  if (max_attempts < 1) throw Error("max_attempts must be >= 1");
  if (tls_cert.empty() != tls_key.empty())
    throw Error(tls_cert.empty() ? "tls_key is set without tls_cert: give both (--tls-cert FILE --tls-key FILE)"
                                 : "tls_cert is set without tls_key: give both (--tls-cert FILE --tls-key FILE)");
  const bool no_tls = !is_loopback() && !tls_enabled() && !insecure_http;
  const bool no_tokens = !is_loopback() && tokens.empty();
  if (no_tls && no_tokens)
    throw Error("refusing to listen on " + host +
                " without tokens and without TLS: add bearer tokens to the config ('tokens') and give --tls-cert "
                "FILE --tls-key FILE (config tls_cert, tls_key; --insecure-http to serve plain HTTP anyway), or "
                "listen on 127.0.0.1");
  if (no_tls)
    throw Error("refusing to serve plain HTTP on non-loopback address " + host +
                ": give --tls-cert FILE --tls-key FILE (config tls_cert, tls_key), or --insecure-http "
                "(config insecure_http) to serve it unencrypted anyway");
  if (no_tokens)
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
  if (j.contains("listen")) {  // through get(): a non-string is a tsm::Error naming the key, not a json::type_error
    std::string listen;
    get(j, "listen", listen);
    apply_listen(c, listen);
  }
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
  get(j, "tar_max_extracted_bytes", c.tar_max_extracted_bytes);
  get(j, "tar_max_member_bytes", c.tar_max_member_bytes);
  get(j, "tar_max_members", c.tar_max_members);
  get(j, "tar_max_ratio", c.tar_max_ratio);
  get(j, "job_memory_max_bytes", c.job_memory_max_bytes);
  get(j, "metrics_public", c.metrics_public);
  get(j, "tls_cert", c.tls_cert);
  get(j, "tls_key", c.tls_key);
  get(j, "insecure_http", c.insecure_http);
  get(j, "log_format", c.log_format);
  get(j, "log_level", c.log_level);
  get(j, "web_dir", c.web_dir);
  get(j, "store", c.store);
  get(j, "role", c.role);
  get(j, "blob_dir", c.blob_dir);
  get(j, "lease_s", c.lease_s);
  get(j, "poll_s", c.poll_s);
  get(j, "max_attempts", c.max_attempts);
  get(j, "worker_id", c.worker_id);
  if (j.contains("tokens")) {
    c.tokens.clear();
    for (const auto& t : j.at("tokens")) {
      TokenConfig tc;
      get(t, "name", tc.name);
      get(t, "sha256", tc.sha256);
      get(t, "scopes", tc.scopes);
      get(t, "devices", tc.devices);
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
  if (auto v = env("TENSORSLM_TAR_MAX_EXTRACTED_BYTES")) c.tar_max_extracted_bytes = env_u64("TENSORSLM_TAR_MAX_EXTRACTED_BYTES", v);
  if (auto v = env("TENSORSLM_TAR_MAX_MEMBER_BYTES")) c.tar_max_member_bytes = env_u64("TENSORSLM_TAR_MAX_MEMBER_BYTES", v);
  if (auto v = env("TENSORSLM_TAR_MAX_MEMBERS"))
    c.tar_max_members = static_cast<int64_t>(std::min<uint64_t>(env_u64("TENSORSLM_TAR_MAX_MEMBERS", v), INT64_MAX));
  if (auto v = env("TENSORSLM_TAR_MAX_RATIO")) c.tar_max_ratio = env_double("TENSORSLM_TAR_MAX_RATIO", v);
  if (auto v = env("TENSORSLM_JOB_MEMORY_MAX_BYTES")) c.job_memory_max_bytes = env_u64("TENSORSLM_JOB_MEMORY_MAX_BYTES", v);
  if (auto v = env("TENSORSLM_METRICS_PUBLIC")) c.metrics_public = env_bool("TENSORSLM_METRICS_PUBLIC", v);
  if (auto v = env("TENSORSLM_TLS_CERT")) c.tls_cert = v;
  if (auto v = env("TENSORSLM_TLS_KEY")) c.tls_key = v;
  if (auto v = env("TENSORSLM_INSECURE_HTTP")) c.insecure_http = env_bool("TENSORSLM_INSECURE_HTTP", v);
  if (auto v = env("TENSORSLM_LOG_FORMAT")) c.log_format = v;
  if (auto v = env("TENSORSLM_LOG_LEVEL")) c.log_level = v;
  if (auto v = env("TENSORSLM_WEB_DIR")) c.web_dir = v;
  if (auto v = env("TENSORSLM_STORE")) c.store = v;
  if (auto v = env("TENSORSLM_ROLE")) c.role = v;
  if (auto v = env("TENSORSLM_BLOB_DIR")) c.blob_dir = v;
  if (auto v = env("TENSORSLM_LEASE_S")) c.lease_s = env_double("TENSORSLM_LEASE_S", v);
  if (auto v = env("TENSORSLM_POLL_S")) c.poll_s = env_double("TENSORSLM_POLL_S", v);
  if (auto v = env("TENSORSLM_MAX_ATTEMPTS"))
    c.max_attempts = static_cast<int>(std::min<uint64_t>(env_u64("TENSORSLM_MAX_ATTEMPTS", v), 1000000));
  if (auto v = env("TENSORSLM_WORKER_ID")) c.worker_id = v;
}

}  // namespace tsm::server

// Server configuration: defaults < config file (JSON with // comments) < TENSORSLM_* environment
// variables < command-line flags. Invariant after validate(): sizes and counts are positive, every
// token's hash is hex and its scopes and device ids well formed, tls_cert and tls_key are both set
// or both empty, and a non-loopback listen address has TLS (or insecure_http, said explicitly) and
// at least one token (otherwise the server refuses to start).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace tsm::server {

struct TokenConfig {
  std::string name;                 ///< who holds it (logged, never the token itself)
  std::string sha256;               ///< hex sha256 of the bearer token
  std::vector<std::string> scopes;  ///< admin | ci | device | metrics
  /// Device ids a device-scope token may post reports for; an entry ending in '*' is a prefix
  /// ("pi-*"; "*" = any device). Empty: the token reads models but posts reports for no device.
  std::vector<std::string> devices;
};

struct Config {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;                         ///< 0 = ephemeral (tests); the bound port is logged and written to port_file
  std::string data_dir = "var";
  std::string port_file;                        ///< when set, the bound port is written there after listen
  int io_threads = 2;                           ///< threads running the HTTP sessions
  int workers = 1;                              ///< concurrent compression jobs
  int codec_threads = 0;                        ///< threads per job (0 = hardware threads / workers)
  int queue_capacity = 256;                     ///< queued jobs before POST /v1/jobs answers 503
  uint64_t upload_max_bytes = uint64_t(8) << 30;  ///< POST /v1/uploads body limit
  uint64_t body_max_bytes = uint64_t(1) << 20;    ///< every other request body
  double header_timeout_s = 30;                 ///< time to receive a request's header
  double body_idle_timeout_s = 30;              ///< longest pause between body bytes (slow-loris guard)
  double max_wait_s = 600;                      ///< cap of ?wait=SECONDS
  bool fsync_uploads = true;                    ///< fsync an upload before answering 201 (durable; disk-bound)
  // Bounds of one tar upload's extraction (413 past any of them; see effective_tar_*()).
  uint64_t tar_max_extracted_bytes = 0;         ///< bytes of all members together (0 = 2 x upload_max_bytes)
  uint64_t tar_max_member_bytes = 0;            ///< bytes of one member (0 = tar_max_extracted_bytes)
  int64_t tar_max_members = 10000;              ///< entries (files and directories)
  double tar_max_ratio = 200;                   ///< extracted bytes / compressed bytes read, while streaming
  /// A job whose estimated working set (pipeline/memory_estimate.h) exceeds this is refused with 422
  /// at POST (0 = 3/4 of the memory this process may use: the cgroup's memory.max, else MemTotal).
  uint64_t job_memory_max_bytes = 0;
  bool metrics_public = false;                  ///< /metrics without a token (else the metrics or admin scope)
  // TLS (both or neither): PEM certificate chain (leaf first) and PEM private key; SIGHUP reloads them.
  std::string tls_cert;                         ///< empty = plain HTTP
  std::string tls_key;
  bool insecure_http = false;                   ///< allow plain HTTP on a non-loopback address (warned at every start)
  std::string log_format = "text";              ///< text | json
  std::string log_level = "info";
  std::string web_dir;                          ///< the dashboard's built files ("" = <exe dir>/../share/tensorslm/web); config web_dir, TENSORSLM_WEB_DIR, --web-dir
  std::vector<TokenConfig> tokens;
  // Scale-out (configs/server.json documents them; README "Scale-out on PostgreSQL").
  std::string store;                            ///< "" = SQLite in data_dir; sqlite:PATH; or a PostgreSQL URI / conninfo
  std::string role = "all";                     ///< all | api (no workers) | worker (only /healthz, /readyz, /metrics)
  std::string blob_dir;                         ///< blobs and extracted models ("" = data_dir); shared by every process
  double lease_s = 30;                          ///< a claimed job's lease (heartbeats every lease_s / 3)
  double poll_s = 1;                            ///< idle workers look for runnable jobs at least this often
  int max_attempts = 3;                         ///< expired leases a job survives before it fails
  std::string worker_id;                        ///< name in jobs.locked_by ("" = <hostname>-<pid>)

  /// 127.0.0.0/8, ::1 or "localhost".
  bool is_loopback() const;
  bool tls_enabled() const { return !tls_cert.empty() || !tls_key.empty(); }
  uint64_t effective_tar_max_extracted_bytes() const;
  uint64_t effective_tar_max_member_bytes() const;
  uint64_t effective_job_memory_max_bytes() const;
  std::string effective_blob_dir() const { return blob_dir.empty() ? data_dir : blob_dir; }
  /// True when `store` names PostgreSQL (postgres[ql]:// URI or key=value conninfo).
  bool store_is_postgres() const;
  /// Throws tsm::Error with the key at fault.
  void validate() const;
};

/// Reads a JSON-with-comments config file over the defaults. Throws tsm::Error naming the key.
Config load_config_file(const std::string& path, Config base = {});
/// Applies TENSORSLM_LISTEN, _DATA_DIR, _WORKERS, _IO_THREADS, _QUEUE_CAPACITY, _UPLOAD_MAX_BYTES,
/// _BODY_IDLE_TIMEOUT_S, _TAR_MAX_EXTRACTED_BYTES, _TAR_MAX_MEMBER_BYTES, _TAR_MAX_MEMBERS,
/// _TAR_MAX_RATIO, _METRICS_PUBLIC (true/false/1/0), _TLS_CERT, _TLS_KEY, _INSECURE_HTTP (true/false/1/0),
/// _LOG_FORMAT, _LOG_LEVEL, _WEB_DIR, _STORE, _ROLE, _BLOB_DIR, _LEASE_S, _POLL_S, _MAX_ATTEMPTS, _WORKER_ID from
/// the environment.
/// Throws tsm::Error naming the variable when a value is not a number / boolean.
void apply_env(Config& c);
/// Parses "HOST:PORT" into c.host / c.port. Throws tsm::Error on a malformed value.
void apply_listen(Config& c, const std::string& listen);

}  // namespace tsm::server

// tensorslm-server: the compression service. Settings: defaults < --config file < TENSORSLM_*
// environment < flags. SIGINT/SIGTERM shut down gracefully (running jobs go back to 'queued');
// SIGHUP reloads the TLS certificate and key for new connections (http/http_server.h).
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <pthread.h>
#include <thread>
#include <iostream>

#include "config/config.h"
#include "http/tls_context.h"
#include "service.h"

int main(int argc, char** argv) {
  using namespace tsm::server;
  CLI::App cli{"tensorslm-server: HTTP/JSON service that compresses LM embeddings and weights with tensor networks"};
  std::string config_file, listen, data_dir, port_file;
  int workers = 0;
  cli.add_option("--config", config_file, "JSON-with-comments config file (see configs/server.json)");
  cli.add_option("--listen", listen, "HOST:PORT to listen on (port 0 = ephemeral)");
  cli.add_option("--data-dir", data_dir, "directory for the database, blobs and extracted models");
  cli.add_option("--workers", workers, "concurrent compression jobs")->check(CLI::PositiveNumber);
  cli.add_option("--port-file", port_file, "write the bound port to this file once listening");
  // Upload extraction limits and /metrics access (config keys of the same names; see configs/server.json).
  uint64_t tar_extracted = 0, tar_member = 0, job_memory = 0;
  int64_t tar_members = 0;
  double tar_ratio = 0;
  bool metrics_public = false;
  auto* o_job_memory = cli.add_option("--job-memory-max-bytes", job_memory,
                                      "refuse (422) a job whose estimated working set exceeds this (0 = 3/4 of the memory limit)");
  auto* o_tar_extracted = cli.add_option("--tar-max-extracted-bytes", tar_extracted, "bytes one tar upload may extract in all (0 = 2 x upload_max_bytes)");
  auto* o_tar_member = cli.add_option("--tar-max-member-bytes", tar_member, "bytes of one tar member (0 = the total limit)");
  auto* o_tar_members = cli.add_option("--tar-max-members", tar_members, "entries of one tar upload")->check(CLI::PositiveNumber);
  auto* o_tar_ratio = cli.add_option("--tar-max-ratio", tar_ratio, "extracted / compressed bytes of a tar upload")->check(CLI::Range(1.0, 1e9));
  auto* o_metrics_public = cli.add_flag("--metrics-public", metrics_public, "serve /metrics without a token (=false to require one)");
  // TLS (config keys tls_cert, tls_key, insecure_http; see configs/server.json).
  std::string tls_cert, tls_key;
  bool insecure_http = false;
  cli.add_option("--tls-cert", tls_cert, "serve HTTPS with this PEM certificate chain (leaf first); SIGHUP reloads it");
  cli.add_option("--tls-key", tls_key, "PEM private key of --tls-cert (unencrypted)");
  auto* o_insecure = cli.add_flag("--insecure-http", insecure_http,
                                  "allow plain HTTP on a non-loopback address (logged as a warning at every start)");
  // Scale-out (config keys store, role, blob_dir, lease_s, max_attempts; see configs/server.json).
  std::string store, role, blob_dir;
  double lease_s = 0;
  int max_attempts = 0;
  cli.add_option("--store", store, "metadata store: a postgresql:// URI or libpq conninfo (password from PGPASSWORD/PGPASSFILE), sqlite:PATH; default SQLite in the data dir");
  cli.add_option("--role", role, "all (default), api (serves the API, runs no jobs) or worker (runs jobs; serves /healthz, /readyz, /metrics)")
      ->check(CLI::IsMember({"all", "api", "worker"}));
  cli.add_option("--blob-dir", blob_dir, "blob and model directory shared by every process (default: the data dir)");
  cli.add_option("--lease-s", lease_s, "lease of a claimed job in seconds (heartbeats every third)")->check(CLI::PositiveNumber);
  cli.add_option("--max-attempts", max_attempts, "expired leases a job survives before it fails")->check(CLI::PositiveNumber);
  std::string web_dir;
  cli.add_option("--web-dir", web_dir, "the dashboard's built files (default: <exe dir>/../share/tensorslm/web)");
  cli.set_version_flag("--version", std::string("tensorslm-server ") + TSM_VERSION);
  CLI11_PARSE(cli, argc, argv);

  // Block the shutdown signals in every thread; one thread waits for them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  // SIGHUP: ignored until the HTTP server handles it (reload); never the default "terminate".
  std::signal(SIGHUP, SIG_IGN);

  Config c;
  try {
    if (!config_file.empty()) c = load_config_file(config_file, c);
    apply_env(c);
    if (!listen.empty()) apply_listen(c, listen);
    if (!data_dir.empty()) c.data_dir = data_dir;
    if (workers > 0) c.workers = workers;
    if (!port_file.empty()) c.port_file = port_file;
    if (o_tar_extracted->count()) c.tar_max_extracted_bytes = tar_extracted;
    if (o_job_memory->count()) c.job_memory_max_bytes = job_memory;
    if (o_tar_member->count()) c.tar_max_member_bytes = tar_member;
    if (o_tar_members->count()) c.tar_max_members = tar_members;
    if (o_tar_ratio->count()) c.tar_max_ratio = tar_ratio;
    if (o_metrics_public->count()) c.metrics_public = metrics_public;
    if (!tls_cert.empty()) c.tls_cert = tls_cert;
    if (!tls_key.empty()) c.tls_key = tls_key;
    if (o_insecure->count()) c.insecure_http = insecure_http;
    if (!web_dir.empty()) c.web_dir = web_dir;
    if (!store.empty()) c.store = store;
    if (!role.empty()) c.role = role;
    if (!blob_dir.empty()) c.blob_dir = blob_dir;
    if (lease_s > 0) c.lease_s = lease_s;
    if (max_attempts > 0) c.max_attempts = max_attempts;
    // A configuration the server would refuse (a non-loopback bind without TLS, say), or a
    // certificate it cannot use, fails here: one line, before anything is opened or logged.
    c.validate();
    if (c.tls_enabled()) make_server_tls_context(c.tls_cert, c.tls_key);
    setup_logging(c);
    Service svc(c);
    svc.start();
    // The signal thread is joined before svc goes away (a detached one could still be inside
    // request_stop() while svc is destroyed): at the end main wakes it with a SIGTERM of its own.
    std::atomic<bool> ending{false};
    std::thread sig([&svc, &ending, set] {
      int s = 0;
      sigwait(&set, &s);
      if (ending) return;
      spdlog::info("signal {} received", s);
      svc.request_stop();
    });
    struct Joiner {
      std::thread& t;
      std::atomic<bool>& ending;
      ~Joiner() {
        ending = true;
        pthread_kill(t.native_handle(), SIGTERM);  // blocked everywhere, so only its sigwait takes it
        t.join();
      }
    } joiner{sig, ending};
    svc.wait();
    svc.stop();
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

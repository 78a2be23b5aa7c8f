// tensorslm-server: the compression service. Settings: defaults < --config file < TENSORSLM_*
// environment < flags. SIGINT/SIGTERM shut down gracefully (running jobs go back to 'queued').
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <iostream>

#include "config/config.h"
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
  cli.set_version_flag("--version", std::string("tensorslm-server ") + TSM_VERSION);
  CLI11_PARSE(cli, argc, argv);

  // Block the shutdown signals in every thread; one thread waits for them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  Config c;
  try {
    if (!config_file.empty()) c = load_config_file(config_file, c);
    apply_env(c);
    if (!listen.empty()) apply_listen(c, listen);
    if (!data_dir.empty()) c.data_dir = data_dir;
    if (workers > 0) c.workers = workers;
    if (!port_file.empty()) c.port_file = port_file;
    setup_logging(c);
    Service svc(c);
    svc.start();
    std::thread sig([&svc, set] {
      int s = 0;
      sigwait(&set, &s);
      spdlog::info("signal {} received", s);
      svc.request_stop();
    });
    sig.detach();
    svc.wait();
    svc.stop();
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

// tensorslm-agent: follows published models on a tensorslm-server, runs a query workload on each
// new version, and reports latency and energy. SIGTERM/SIGINT finish the current query and flush
// the report spool. Usage: tensorslm-agent --config FILE [--once] [--server URL] [--device-id ID]
#include <signal.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <thread>

#include "lib/agent.h"

int main(int argc, char** argv) {
  CLI::App app{"tensorslm-agent: pull compressed models, run query workloads, report latency and energy"};
  app.set_version_flag("--version", std::string("tensorslm-agent ") + TSM_VERSION);
  std::string config, server, device_id;
  bool once = false;
  app.add_option("--config", config, "agent configuration (JSON with comments)")->required();
  app.add_flag("--once", once, "run one cycle (poll, download, workload, report, flush) and exit");
  app.add_option("--server", server, "server URL (overrides the config)");
  app.add_option("--device-id", device_id, "device id (overrides the config; default: host name)");
  CLI11_PARSE(app, argc, argv);

  // Signals go to one waiting thread, never to a handler running inside the workload.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  try {
    auto cfg = tsm::client::load_agent_config(config);
    if (!server.empty()) {
      tsm::client::parse_url(server);
      cfg.http.server = server;
    }
    if (!device_id.empty()) cfg.device_id = device_id;
    if (cfg.models.empty()) throw tsm::ParamError("models", "the agent follows no model; list at least one");
    tsm::client::Agent agent(cfg);
    std::cerr << agent.energy_note() << std::endl;
    std::thread sig([&] {
      int s = 0;
      sigwait(&set, &s);
      if (s != 0) agent.request_stop();
    });
    int rc = 0;
    if (once) {
      auto st = agent.run_once();
      std::cerr << "tensorslm-agent: polled " << st.polled << ", updated " << st.updated << ", rejected " << st.rejected
                << ", delivered " << st.delivered << " report(s), " << st.spooled << " spooled" << std::endl;
      rc = st.errors.empty() ? 0 : 2;
    } else {
      agent.run();
    }
    // Wake the signal thread so it can be joined.
    pthread_kill(sig.native_handle(), SIGTERM);
    sig.join();
    return rc;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return 1;
  }
}

// Remote commands of the `tensorslm` CLI, talking to tensorslm-server over its REST API:
// upload, submit, jobs, cancel, download, models, reports. Server and token come from --server /
// --token, else TENSORSLM_SERVER / TENSORSLM_TOKEN, else the config file ($TENSORSLM_CONFIG or
// ~/.config/tensorslm/client.json: {"server": ..., "token": ...}), else http://127.0.0.1:8080.
// --json prints the server's JSON reply (one document on stdout) for scripts and CI.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/cli_args.h"
#include "cli/command_registry.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "lib/http_client.h"
#include "model/evaluate.h"
#include "lib/tar_writer.h"

namespace tsm::cli {
namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;
using client::HttpClient;
using client::HttpOptions;
using client::url_encode;

struct RemoteFlags {
  std::string server, token;
  bool json = false;
};

void add_remote_flags(CLI::App* c, RemoteFlags& f) {
  c->add_option("--server", f.server, "server URL (else $TENSORSLM_SERVER, the config file, http://127.0.0.1:8080)");
  c->add_option("--token", f.token, "bearer token (else $TENSORSLM_TOKEN or the config file)");
  c->add_flag("--json", f.json, "print the server's JSON reply");
}

std::string env(const char* k) {
  const char* v = std::getenv(k);
  return v ? v : "";
}

HttpOptions resolve_options(const RemoteFlags& f) {
  HttpOptions o;
  std::string cfg_server, cfg_token;
  std::string path = env("TENSORSLM_CONFIG");
  if (path.empty() && !env("HOME").empty()) path = env("HOME") + "/.config/tensorslm/client.json";
  if (!path.empty() && fs::exists(path)) {
    json j;
    try {
      j = json::parse(read_file(path, 1 << 20), nullptr, true, true);
    } catch (const json::exception& e) {
      throw FormatError("config file '" + path + "' is not valid JSON: " + e.what());
    }
    cfg_server = j.value("server", "");
    cfg_token = j.value("token", "");
  }
  o.server = !f.server.empty() ? f.server : !env("TENSORSLM_SERVER").empty() ? env("TENSORSLM_SERVER")
                                        : !cfg_server.empty()              ? cfg_server
                                                                           : o.server;
  o.token = !f.token.empty() ? f.token : !env("TENSORSLM_TOKEN").empty() ? env("TENSORSLM_TOKEN") : cfg_token;
  o.user_agent = std::string("tensorslm-cli/") + TSM_VERSION;
  return o;
}

/// A one-line progress bar on stderr when it is a terminal (and not --json); nothing otherwise.
client::Progress progress_bar(const RemoteFlags& f, const std::string& label) {
  if (f.json || !::isatty(2)) return {};
  return [label, last = -1](uint64_t done, uint64_t total) mutable {
    int pct = total ? static_cast<int>(done * 100 / total) : 0;
    if (pct == last && done != total) return;
    last = pct;
    const int width = 30, fill = pct * width / 100;
    std::fprintf(stderr, "\r%s [%s%s] %3d%% %.1f/%.1f MiB", label.c_str(), std::string(fill, '#').c_str(),
                 std::string(width - fill, ' ').c_str(), pct, done / 1048576.0, total / 1048576.0);
    if (total && done >= total) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  };
}

json parse_reply(const client::HttpResponse& r) {
  try {
    return json::parse(r.body);
  } catch (const json::exception&) {
    throw Error("the server's reply is not JSON (HTTP " + std::to_string(r.status) + ")");
  }
}

void print_json(const json& j) { std::cout << j.dump(2) << std::endl; }

std::string s_of(const json& j, const char* k) {
  if (!j.contains(k) || j[k].is_null()) return "-";
  return j[k].is_string() ? j[k].get<std::string>() : j[k].dump();
}

// ---- upload ----------------------------------------------------------------------------------
struct UploadArgs {
  RemoteFlags f;
  std::string path, format, name;
};

void cmd_upload(const UploadArgs& a) {
  HttpClient c(resolve_options(a.f));
  std::string file = a.path, format = a.format, tmp;
  if (fs::is_directory(a.path)) {
    tmp = (fs::temp_directory_path() / ("tensorslm-upload-" + std::to_string(::getpid()) + ".tar")).string();
    auto st = client::write_tar(a.path, tmp);
    if (!a.f.json) std::cerr << "packed " << st.files << " file(s) of '" << a.path << "' as tar (" << st.bytes << " bytes)\n";
    file = tmp;
    if (format.empty()) format = "tar";
  } else if (!fs::is_regular_file(a.path)) {
    throw Error("'" + a.path + "' is neither a file nor a directory");
  }
  std::string target = "/v1/uploads";
  std::string q;
  if (!format.empty()) q += "format=" + url_encode(format);
  std::string name = a.name.empty() ? fs::path(a.path).filename().string() : a.name;
  if (!name.empty()) q += std::string(q.empty() ? "" : "&") + "name=" + url_encode(name);
  if (!q.empty()) target += "?" + q;
  client::HttpResponse r;
  try {
    r = c.upload_file(target, file, format == "tar" ? "application/x-tar" : "application/octet-stream",
                      progress_bar(a.f, "upload"));
  } catch (...) {
    if (!tmp.empty()) fs::remove(tmp);
    throw;
  }
  if (!tmp.empty()) fs::remove(tmp);
  json j = parse_reply(r);
  if (a.f.json) return print_json(j);
  std::cout << s_of(j, "id") << "  " << s_of(j, "format") << "  sha256 " << s_of(j, "sha256") << "  "
            << (j.contains("tensors") && j["tensors"].is_array() ? j["tensors"].size() : 0) << " tensor(s)\n";
}

// ---- submit / jobs / cancel -------------------------------------------------------------------
struct SubmitArgs {
  RemoteFlags f;
  std::string upload, method, publish;
  std::vector<std::string> params, tensors;
  int priority = 0;
  double wait = -1;  ///< < 0: do not wait
  bool whole_model = false, calibrate = false;
  int calib_sequences = 64, adam_steps = 50;
  std::string whitening = "cholesky";
  // whole-model evaluation (the job's "evaluation"); 0 / empty: the server's defaults
  int64_t eval_tokens = 0;
  int eval_length = 0;
  std::string eval_ids;
  bool no_compare = false, no_token_weights = false;
};

void print_job_line(const json& j) {
  std::cout << s_of(j, "id") << "  " << s_of(j, "state") << "  " << s_of(j, "method");
  if (j.contains("progress") && j["progress"].is_number()) std::printf("  %.0f%%", 100.0 * j["progress"].get<double>());
  if (j.contains("error") && j["error"].is_string() && !j["error"].get<std::string>().empty()) std::cout << "  error: " << j["error"].get<std::string>();
  if (j.contains("result") && j["result"].is_object() && j["result"].contains("artifact")) {
    const auto& art = j["result"]["artifact"];
    std::cout << "  artifact " << (art.is_object() ? s_of(art, "id") : art.dump());
  }
  std::cout << "\n";
}

bool job_done(const json& j) {
  auto s = j.value("state", "");
  return s == "succeeded" || s == "failed" || s == "canceled";
}

void cmd_submit(const SubmitArgs& a) {
  HttpClient c(resolve_options(a.f));
  json body = {{"upload", a.upload}, {"method", a.method}, {"params", json::object()}};
  add_params(body["params"], a.params);
  if (!a.tensors.empty()) body["tensors"] = a.tensors;
  if (a.priority) body["priority"] = a.priority;
  if (a.whole_model) body["whole_model"] = true;
  if (a.calibrate)
    body["calibrate"] = {{"sequences", a.calib_sequences}, {"adam_steps", a.adam_steps}, {"whitening", a.whitening}};
  json ev = json::object();
  if (a.eval_tokens > 0) ev["tokens"] = a.eval_tokens;
  if (a.eval_length > 0) ev["length"] = a.eval_length;
  if (a.no_compare) ev["compare"] = false;
  if (!a.eval_ids.empty()) ev["sequences"] = read_sequences_file(a.eval_ids);
  if (!ev.empty()) body["evaluation"] = ev;
  if (a.no_token_weights) body["token_weights"] = false;
  if (!a.publish.empty()) {
    auto c2 = a.publish.find(':');
    body["publish"] = {{"model", a.publish.substr(0, c2)}};
    if (c2 != std::string::npos) body["publish"]["tag"] = a.publish.substr(c2 + 1);
  }
  const int step = a.wait < 0 ? 0 : static_cast<int>(std::min(a.wait > 0 ? a.wait : 60.0, 60.0));
  json j = parse_reply(c.post_json("/v1/jobs" + (step ? "?wait=" + std::to_string(step) : std::string()), body.dump()));
  if (a.wait >= 0) {
    const auto t0 = std::chrono::steady_clock::now();
    while (!job_done(j)) {
      double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (a.wait > 0 && elapsed >= a.wait) break;
      j = parse_reply(c.get("/v1/jobs/" + url_encode(j.value("id", "")) + "?wait=" + std::to_string(step)));
    }
  }
  if (a.f.json) print_json(j);
  else print_job_line(j);
  if (a.wait >= 0 && j.value("state", "") != "succeeded")
    throw Error("job " + j.value("id", "?") + " ended " + j.value("state", "unfinished") +
                (j.contains("error") && j["error"].is_string() ? ": " + j["error"].get<std::string>() : std::string()));
}

struct JobsArgs {
  RemoteFlags f;
  std::string id, state;
  int limit = 50;
};

void cmd_jobs(const JobsArgs& a) {
  HttpClient c(resolve_options(a.f));
  if (!a.id.empty()) {
    json j = parse_reply(c.get("/v1/jobs/" + url_encode(a.id)));
    if (a.f.json) return print_json(j);
    print_job_line(j);
    if (j.contains("result")) std::cout << j["result"].dump(2) << "\n";
    return;
  }
  std::string q = "?limit=" + std::to_string(a.limit);
  if (!a.state.empty()) q += "&state=" + url_encode(a.state);
  json j = parse_reply(c.get("/v1/jobs" + q));
  if (a.f.json) return print_json(j);
  const json& list = j.contains("jobs") ? j["jobs"] : j;
  if (list.is_array())
    for (const auto& job : list) print_job_line(job);
}

void cmd_cancel(const RemoteFlags& f, const std::string& id) {
  HttpClient c(resolve_options(f));
  client::HttpRequest r;
  r.method = "DELETE";
  r.target = "/v1/jobs/" + url_encode(id);
  json j = parse_reply(c.checked(r));
  if (f.json) return print_json(j);
  print_job_line(j);
}

// ---- download / models / reports --------------------------------------------------------------
void cmd_download(const RemoteFlags& f, const std::string& artifact, const std::string& out) {
  HttpClient c(resolve_options(f));
  // Artifacts are content-addressed: an id of 64 hex digits is the sha256 the bytes must have.
  const bool is_sha = artifact.size() == 64 && artifact.find_first_not_of("0123456789abcdef") == std::string::npos;
  auto r = c.download("/v1/artifacts/" + url_encode(artifact), out, std::nullopt, is_sha ? artifact : "", "",
                      progress_bar(f, "download"));
  if (f.json) return print_json({{"artifact", artifact}, {"path", out}, {"bytes", r.bytes}, {"sha256", r.sha256}, {"verified", is_sha}});
  std::cout << out << "  " << r.bytes << " bytes  sha256 " << r.sha256 << (is_sha ? " (verified)" : "") << "\n";
}

void cmd_models(const RemoteFlags& f) {
  HttpClient c(resolve_options(f));
  json j = parse_reply(c.get("/v1/models"));
  if (f.json) return print_json(j);
  for (const auto& m : j.value("models", json::array())) {
    const json& l = m.contains("latest") ? m["latest"] : json::object();
    std::cout << s_of(m, "name") << "  " << s_of(m, "versions") << " version(s)  latest " << s_of(l, "tag") << "  "
              << s_of(l, "sha256") << "  " << s_of(l, "size_bytes") << " bytes\n";
  }
}

struct ReportsArgs {
  RemoteFlags f;
  std::string model, device;
  int limit = 100;
};

void cmd_reports(const ReportsArgs& a) {
  HttpClient c(resolve_options(a.f));
  std::string q = "?limit=" + std::to_string(a.limit);
  if (!a.model.empty()) q += "&model=" + url_encode(a.model);
  if (!a.device.empty()) q += "&device=" + url_encode(a.device);
  json j = parse_reply(c.get("/v1/reports" + q));
  if (a.f.json) return print_json(j);
  for (const auto& r : j.value("reports", json::array())) {
    const json& rep = r.contains("report") ? r["report"] : json::object();
    std::cout << s_of(r, "device") << "  " << s_of(r, "model") << ":" << s_of(r, "tag");
    if (rep.contains("error") && !rep["error"].get<std::string>().empty()) {
      std::cout << "  error: " << rep["error"].get<std::string>() << "\n";
      continue;
    }
    for (const auto& run : rep.value("runs", json::array())) {
      std::printf("  [%s p50 %.1f ms, %.1f tok/s", run.value("variant", "?").c_str(), run.value("p50_ms", 0.0),
                  run.value("tokens_per_s", 0.0));
      if (run.contains("energy"))
        std::printf(", %.3f J/query (%s)", run["energy"].value("joules_per_query", 0.0), run["energy"].value("source", "").c_str());
      std::printf("]");
    }
    std::cout << "\n";
  }
}

void add_remote_commands(CLI::App& app) {
  static UploadArgs up;
  auto* u = app.add_subcommand("upload", "send a tensor file or an HF model directory (as tar) to the server");
  u->add_option("path", up.path, "file (.npy, .safetensors, ...) or directory")->required();
  u->add_option("--format", up.format, "npy | safetensors | tar | json | raw (default: detected by the server)");
  u->add_option("--name", up.name, "a label for the upload (default: the file name)");
  add_remote_flags(u, up.f);
  u->callback([] { cmd_upload(up); });

  static SubmitArgs sb;
  auto* s = app.add_subcommand("submit", "submit a compression job for an upload");
  s->add_option("--upload", sb.upload, "upload id (from `tensorslm upload`)")->required();
  s->add_option("--method", sb.method, "compression method (`tensorslm methods` lists them)")->required();
  s->add_option("--param", sb.params, "method parameter key=value (value parsed as JSON when it is JSON)");
  s->add_option("--tensor", sb.tensors, "tensor name or regex to compress (repeatable; default: the codec's choice)");
  s->add_option("--publish", sb.publish, "publish the artifact as MODEL[:TAG] for agents");
  s->add_option("--priority", sb.priority, "higher runs first (-100..100)");
  s->add_flag("--whole-model", sb.whole_model, "compress a model upload into a whole-model artifact");
  s->add_flag("--calibrate", sb.calibrate, "whole-model saten: fit each layer in the norm of its inputs, then Adam");
  s->add_option("--calib-sequences", sb.calib_sequences, "self-sampled calibration sequences (default 64)");
  s->add_option("--eval-tokens", sb.eval_tokens, "whole-model: predicted tokens the sampled evaluation sequences cover (server default 2048)");
  s->add_option("--eval-length", sb.eval_length, "whole-model: tokens per sampled evaluation sequence (server default 129)");
  s->add_option("--eval-ids", sb.eval_ids, "whole-model: evaluate on these token sequences (JSON array of arrays, or one per line)");
  s->add_flag("--no-compare", sb.no_compare, "whole-model: skip the reference representations and the verdict");
  s->add_flag("--no-token-weights", sb.no_token_weights, "whole-model: no token-frequency weights for a tt-token embedding");
  s->add_option("--adam-steps", sb.adam_steps, "Adam steps per layer after the fit (default 50)");
  s->add_option("--whitening", sb.whitening, "cholesky | diagonal (default cholesky)");
  s->add_option("--wait", sb.wait, "wait until the job ends (optionally at most SECONDS); exit 1 unless it succeeded")
      ->expected(0, 1)
      ->default_str("0");
  add_remote_flags(s, sb.f);
  s->callback([s] {
    if (s->count("--wait") && sb.wait < 0) sb.wait = 0;
    cmd_submit(sb);
  });

  static JobsArgs jb;
  auto* j = app.add_subcommand("jobs", "list jobs, or show one");
  j->add_option("id", jb.id, "job id");
  j->add_option("--state", jb.state, "only jobs in this state");
  j->add_option("--limit", jb.limit, "at most this many");
  add_remote_flags(j, jb.f);
  j->callback([] { cmd_jobs(jb); });

  static RemoteFlags cf;
  static std::string cancel_id;
  auto* c = app.add_subcommand("cancel", "cancel a queued or running job");
  c->add_option("id", cancel_id, "job id")->required();
  add_remote_flags(c, cf);
  c->callback([] { cmd_cancel(cf, cancel_id); });

  static RemoteFlags df;
  static std::string art, out;
  auto* d = app.add_subcommand("download", "download an artifact (sha256-verified when the id is its sha256)");
  d->add_option("artifact", art, "artifact id (sha256)")->required();
  d->add_option("-o,--output", out, "file to write")->required();
  add_remote_flags(d, df);
  d->callback([] { cmd_download(df, art, out); });

  static RemoteFlags mf;
  auto* m = app.add_subcommand("models", "list published models and their latest versions");
  add_remote_flags(m, mf);
  m->callback([] { cmd_models(mf); });

  static ReportsArgs rp;
  auto* r = app.add_subcommand("reports", "list device reports");
  r->add_option("--model", rp.model, "only this model");
  r->add_option("--device", rp.device, "only this device");
  r->add_option("--limit", rp.limit, "at most this many");
  add_remote_flags(r, rp.f);
  r->callback([] { cmd_reports(rp); });
}

static RegisterCommands reg{40, add_remote_commands};

}  // namespace
}  // namespace tsm::cli

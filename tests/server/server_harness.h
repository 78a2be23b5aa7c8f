// Test harness for the server tests: a real tensorslm-server child process on an ephemeral
// loopback port (tests/support/server_process.h, started by the constructor), a small synchronous Beast HTTP client, shell helpers (curl) and
// test inputs. Header-only; included by tests/server/test_*.cpp.
#pragma once
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "support/test_paths.h"
#include "common/matrix.h"
#include "common/tensor.h"
#include "formats/npy.h"
#include "support/server_process.h"

namespace tsm::test {

namespace fs = std::filesystem;
namespace beast = boost::beast;
namespace http = beast::http;
using json = nlohmann::json;

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/tsm-server-test-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

/// The shared tsm::testing::ServerProcess, started by its constructor; a start that fails fails
/// the test with the server's log.
class ServerProcess : public tsm::testing::ServerProcess {
 public:
  explicit ServerProcess(std::string data_dir, std::vector<std::pair<std::string, std::string>> env = {},
                         std::vector<std::string> extra_args = {})
      : tsm::testing::ServerProcess(std::move(data_dir), std::move(env), std::move(extra_args)) {
    start();
  }
  void start() {
    if (!tsm::testing::ServerProcess::start()) FAIL() << "server did not start; log:\n" << log();
  }
};

struct HttpResult {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  json js() const { return json::parse(body); }
  std::string header(const std::string& k) const {
    auto it = headers.find(k);
    return it == headers.end() ? "" : it->second;
  }
};

/// One request on a fresh connection (the small C++ client of the tests).
inline HttpResult http_request(uint16_t port, http::verb method, const std::string& target, const std::string& body = "",
                               std::map<std::string, std::string> headers = {}) {
  boost::asio::io_context ioc;
  beast::tcp_stream stream(ioc);
  stream.connect(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
  http::request<http::string_body> req{method, target, 11};
  req.set(http::field::host, "127.0.0.1");
  for (auto& [k, v] : headers) req.set(k, v);
  req.body() = body;
  if (method != http::verb::get && method != http::verb::head) req.prepare_payload();
  http::write(stream, req);
  beast::flat_buffer buf;
  http::response_parser<http::string_body> p;
  p.body_limit(std::numeric_limits<uint64_t>::max());
  if (method == http::verb::head) p.skip(true);
  http::read(stream, buf, p);
  HttpResult r;
  r.status = p.get().result_int();
  for (auto& f : p.get()) {
    std::string k(f.name_string());
    std::transform(k.begin(), k.end(), k.begin(), ::tolower);
    r.headers[k] = std::string(f.value());
  }
  r.body = std::move(p.get().body());
  beast::error_code ec;
  stream.socket().shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
  return r;
}

inline HttpResult GET(uint16_t port, const std::string& t, std::map<std::string, std::string> h = {}) {
  return http_request(port, http::verb::get, t, "", std::move(h));
}
inline HttpResult POST(uint16_t port, const std::string& t, const std::string& body,
                       std::map<std::string, std::string> h = {}) {
  return http_request(port, http::verb::post, t, body, std::move(h));
}

/// Runs a shell command; returns stdout, sets rc.
inline std::string sh(const std::string& cmd, int* rc = nullptr) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int st = ::pclose(p);
  if (rc) *rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

/// A (rows, cols) f32 matrix with smooth low-rank structure plus noise (embedding-like), seeded.
inline MatrixRM test_matrix(int64_t rows, int64_t cols, uint32_t seed = 7) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0, 1);
  const int k = 16;
  MatrixRM A(rows, k), B(k, cols);
  for (int64_t i = 0; i < A.size(); ++i) A.data()[i] = nd(rng);
  for (int64_t i = 0; i < B.size(); ++i) B.data()[i] = nd(rng) * 0.1f;
  MatrixRM M = A * B;
  for (int64_t i = 0; i < M.size(); ++i) M.data()[i] += 0.02f * nd(rng);
  return M;
}

inline std::string npy_of(const MatrixRM& m) { return npy_bytes(Tensor::from_matrix("array", m)); }

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

/// A plain tar of tests/fixtures/<name> (the model directory as a user uploads it), written under `dir`.
inline std::string fixture_tar(const std::string& dir, const std::string& name) {
  int rc = 0;
  const std::string tar = dir + "/" + name + ".tar";
  sh("tar -C " + std::string(TSM_FIXTURES_DIR) + " -cf " + tar + " " + name, &rc);
  EXPECT_EQ(rc, 0);
  std::ifstream in(tar, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

/// Rows of `table` in the SQLite database at `db` (-1 when it cannot be read).
inline int64_t count_rows(const std::string& db, const std::string& table) {
  sqlite3* h = nullptr;
  sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(h, ("SELECT COUNT(*) FROM " + table).c_str(), -1, &s, nullptr);
  int64_t n = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
  sqlite3_finalize(s);
  sqlite3_close(h);
  return n;
}

/// Regular files under dir (recursive).
inline int count_files(const std::string& dir) {
  int n = 0;
  std::error_code ec;
  if (!fs::exists(dir)) return 0;
  for (auto& e : fs::recursive_directory_iterator(dir, ec))
    if (e.is_regular_file()) ++n;
  return n;
}

/// Polls GET /v1/jobs/{id} until `pred(job)` or timeout_s; returns the last job JSON.
template <class Pred>
json poll_job(uint16_t port, const std::string& id, Pred pred, double timeout_s = 60) {
  auto t0 = std::chrono::steady_clock::now();
  json j;
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < timeout_s) {
    auto r = GET(port, "/v1/jobs/" + id);
    j = r.js();
    if (pred(j)) return j;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return j;
}

}  // namespace tsm::test

// tensorslm-server over TLS (--tls-cert / --tls-key), the real binary on 127.0.0.1 with self-signed
// certificates made by the openssl tool at test time: /healthz and a streamed upload through the
// project's HttpClient with the certificate as CA (and refused without it), the `tensorslm` CLI and
// the agent against it; plain HTTP on the TLS port gets a 400 and the server keeps serving; TLS 1.1,
// TLS 1.2 without ECDHE or without AEAD, and renegotiation are refused; SIGHUP swaps the certificate
// for new connections (served fingerprints compared) while an open connection keeps working, and a
// broken or mismatched file on SIGHUP keeps the old one; a non-loopback bind without TLS is refused
// unless --insecure-http (or the config key) is given, which is then warned about; bad certificate or
// key files stop the start with one line.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "support/test_paths.h"
#include "common/atomic_file.h"
#include "common/sha256.h"
#include "lib/http_client.h"
#include "lib/tar_writer.h"
#include "server_harness.h"

namespace {

using namespace tsm::test;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tsm::client::HttpClient;
using tsm::client::HttpOptions;

const std::string kBin = std::string(TSM_BIN_DIR);

/// A self-signed RSA certificate for localhost and 127.0.0.1 in dir/name.crt and dir/name.key.
struct Cert {
  std::string crt, key;
};
Cert make_cert(const std::string& dir, const std::string& name) {
  Cert c{dir + "/" + name + ".crt", dir + "/" + name + ".key"};
  const std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -keyout " + c.key + " -out " + c.crt +
                          " -days 2 -subj /CN=tsm-" + name +
                          " -addext subjectAltName=DNS:localhost,IP:127.0.0.1 >/dev/null 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << "the openssl tool could not make a test certificate: " << cmd;
  return c;
}

std::string hex_digest(X509* x) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (!x || X509_digest(x, EVP_sha256(), md, &n) != 1) return "";
  std::string s;
  char b[3];
  for (unsigned i = 0; i < n; ++i) {
    std::snprintf(b, sizeof b, "%02x", md[i]);
    s += b;
  }
  return s;
}

/// SHA-256 fingerprint of the first certificate in a PEM file ("" when there is none).
std::string pem_fingerprint(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return "";
  X509* x = PEM_read_X509(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  std::string s = hex_digest(x);
  X509_free(x);
  return s;
}

/// What a test client offers (0 / "" = OpenSSL's defaults).
struct Offer {
  int min_version = 0, max_version = 0;
  std::string ciphers;  ///< TLS 1.2 cipher list
  bool legacy = false;  ///< security level 0, so that this OpenSSL still offers TLS 1.1 at all
};

/// One TLS connection to 127.0.0.1:port with a Boost client that does not verify (it reads the
/// served certificate instead); keep-alive requests on it.
class TlsConn {
 public:
  TlsConn(uint16_t port, const Offer& o = {}) : ctx_(ssl::context::tls_client) {
    ctx_.set_verify_mode(ssl::verify_none);
    SSL_CTX* h = ctx_.native_handle();
    if (o.legacy) SSL_CTX_set_security_level(h, 0);
    if (o.min_version) SSL_CTX_set_min_proto_version(h, o.min_version);
    if (o.max_version) SSL_CTX_set_max_proto_version(h, o.max_version);
    if (!o.ciphers.empty()) {
      EXPECT_EQ(SSL_CTX_set_cipher_list(h, o.ciphers.c_str()), 1) << o.ciphers;
    }
    stream_.emplace(ioc_, ctx_);
    beast::get_lowest_layer(*stream_).connect({net::ip::make_address("127.0.0.1"), port});
    SSL_set_tlsext_host_name(stream_->native_handle(), "localhost");
    stream_->handshake(ssl::stream_base::client, error);
  }
  beast::error_code error;  ///< of the handshake
  bool ok() const { return !error; }
  std::string fingerprint() {
    X509* x = SSL_get1_peer_certificate(stream_->native_handle());
    std::string s = hex_digest(x);
    X509_free(x);
    return s;
  }
  std::string protocol() { return SSL_get_version(stream_->native_handle()); }
  std::string cipher() { return SSL_get_cipher_name(stream_->native_handle()); }
  /// GET on this connection (keep-alive); the status, or -1 when the exchange failed.
  int get(const std::string& target) {
    http::request<http::empty_body> req{http::verb::get, target, 11};
    req.set(http::field::host, "localhost");
    req.keep_alive(true);
    beast::error_code ec;
    http::write(*stream_, req, ec);
    if (ec) return -1;
    http::response<http::string_body> res;
    http::read(*stream_, buf_, res, ec);
    return ec ? -1 : res.result_int();
  }
  /// Asks the server to renegotiate (TLS 1.2); the error the handshake ends with.
  beast::error_code renegotiate() {
    beast::error_code ec;
    if (SSL_renegotiate(stream_->native_handle()) != 1) return beast::errc::make_error_code(beast::errc::not_supported);
    stream_->handshake(ssl::stream_base::client, ec);
    if (!ec && get("/healthz") != 200) ec = beast::errc::make_error_code(beast::errc::connection_aborted);
    return ec;
  }

 private:
  net::io_context ioc_;
  ssl::context ctx_;
  std::optional<beast::ssl_stream<beast::tcp_stream>> stream_;
  beast::flat_buffer buf_;
};

/// The project's client for https://localhost:port with `ca` as the trusted CA.
HttpOptions https_opts(uint16_t port, const std::string& ca) {
  HttpOptions o;
  o.server = "https://localhost:" + std::to_string(port);
  o.ca_file = ca;
  o.max_attempts = 1;
  o.connect_timeout = std::chrono::milliseconds(2000);
  o.io_timeout = std::chrono::milliseconds(60000);
  return o;
}

/// A tensorslm-server with arbitrary flags and no default --listen, started at construction (data in
/// <work>/data, output in <work>/server-1.log): started() once it wrote its port, else rc() and log() say why.
struct RawServer : tsm::testing::ServerProcess {
  RawServer(const std::string& work, std::vector<std::string> args)
      : tsm::testing::ServerProcess(work + "/data", {}, std::move(args)) {
    listen_from_args();
    start();
  }
  bool started() const { return port() != 0; }
  int rc() const { return exit_code(); }
};

/// The pid of our child tensorslm-server whose command line names `data_dir` (-1 if none).
pid_t child_server_pid(const std::string& data_dir) {
  for (auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream cmd(e.path() / "cmdline", std::ios::binary);
    std::string c((std::istreambuf_iterator<char>(cmd)), {});
    if (c.find("tensorslm-server") == std::string::npos || c.find(std::string("--data-dir") + '\0' + data_dir + '\0') == std::string::npos)
      continue;
    std::ifstream st(e.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(st)), {});
    int ppid = 0;
    auto close = stat.rfind(')');
    if (close != std::string::npos && std::sscanf(stat.c_str() + close + 2, "%*c %d", &ppid) == 1 && ppid == ::getpid())
      return static_cast<pid_t>(std::stoi(name));
  }
  return -1;
}

size_t count_of(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
  return n;
}

/// Waits (10 s at most) until `log()` holds `needle` at least `n` times.
template <class LogFn>
bool wait_for_log(LogFn log, const std::string& needle, size_t n) {
  for (int i = 0; i < 1000; ++i) {
    if (count_of(log(), needle) >= n) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

/// Lines of `s` that are not empty.
std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  size_t a = 0;
  while (a < s.size()) {
    size_t b = s.find('\n', a);
    if (b == std::string::npos) b = s.size();
    if (b > a) out.push_back(s.substr(a, b - a));
    a = b + 1;
  }
  return out;
}

struct CmdResult {
  int rc;
  std::string out;
};
CmdResult run(const std::string& cmd) {
  int rc = -1;
  std::string out = sh(cmd + " 2>&1", &rc);
  return {rc, out};
}

/// A config file with one admin token (the server needs one on a non-loopback address) and `extra` keys.
std::string token_config(const std::string& path, const json& extra) {
  json c = {{"tokens", {{{"name", "admin"}, {"sha256", tsm::sha256_hex("s3cret")}, {"scopes", {"admin"}}}}}};
  for (auto it = extra.begin(); it != extra.end(); ++it) c[it.key()] = it.value();
  tsm::write_file_atomic(path, "// written by test_server_tls\n" + c.dump(2));
  return path;
}

class ServerTls : public ::testing::Test {
 protected:
  void SetUp() override {
    cert_ = make_cert(tmp_.path, "a");
    ASSERT_FALSE(pem_fingerprint(cert_.crt).empty());
    // The server reads these two paths at start and on every SIGHUP.
    crt_ = tmp_.path + "/server.crt";
    key_ = tmp_.path + "/server.key";
    fs::copy_file(cert_.crt, crt_);
    fs::copy_file(cert_.key, key_);
    srv_.emplace(tmp_.path + "/data", std::vector<std::pair<std::string, std::string>>{},
                 std::vector<std::string>{"--tls-cert", crt_, "--tls-key", key_});
  }
  uint16_t port() const { return srv_->port(); }

  TempDir tmp_;
  Cert cert_;
  std::string crt_, key_;
  std::optional<ServerProcess> srv_;
};

TEST_F(ServerTls, HealthzAndUploadOverHttpsWithTheCertificateAsCa) {
  HttpClient c(https_opts(port(), cert_.crt));
  auto r = c.get("/healthz");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_NE(srv_->log().find("TLS on (TLS 1.2+"), std::string::npos) << srv_->log();

  // A streamed upload of 2 MB goes through the raw Content-Length body path over TLS.
  const std::string npy = tmp_.path + "/m.npy";
  write_bytes(npy, npy_of(test_matrix(1024, 512)));
  auto up = c.upload_file("/v1/uploads?name=m", npy, "application/octet-stream");
  ASSERT_EQ(up.status, 201) << up.body;
  EXPECT_EQ(json::parse(up.body).at("sha256"), tsm::sha256_file(npy));

  // The certificate is really checked: not trusted without it as CA.
  HttpOptions no_ca = https_opts(port(), "");
  HttpClient untrusting(no_ca);
  EXPECT_THROW(untrusting.get("/healthz"), tsm::client::NetworkError);
  // A default client negotiates TLS 1.3.
  TlsConn t(port());
  ASSERT_TRUE(t.ok()) << t.error.message();
  EXPECT_EQ(t.protocol(), "TLSv1.3");
  EXPECT_EQ(t.get("/healthz"), 200);
  EXPECT_EQ(t.get("/readyz"), 200);  // keep-alive on the same connection
}

TEST_F(ServerTls, PlainHttpOnTheTlsPortGets400AndTheServerKeepsServing) {
  auto r = GET(port(), "/healthz");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("https://"), std::string::npos) << r.body;
  EXPECT_EQ(r.header("content-type"), "application/problem+json");
  // Bytes that are neither HTTP nor TLS, then a client that connects and says nothing.
  {
    net::io_context ioc;
    net::ip::tcp::socket s(ioc);
    s.connect({net::ip::make_address("127.0.0.1"), port()});
    net::write(s, net::buffer(std::string("\x16\x03\x01\x00\x05garbage-not-a-hello", 24)));
    char b[256];
    beast::error_code ec;
    s.read_some(net::buffer(b), ec);  // the server answers with an alert or closes; it does not hang
  }
  {
    net::io_context ioc;
    net::ip::tcp::socket s(ioc);
    s.connect({net::ip::make_address("127.0.0.1"), port()});
  }
  HttpClient c(https_opts(port(), cert_.crt));
  EXPECT_EQ(c.get("/healthz").status, 200);
  EXPECT_NE(srv_->log().find("plain HTTP from 127.0.0.1"), std::string::npos) << srv_->log();
}

TEST_F(ServerTls, RefusesTls11WeakTls12CiphersAndRenegotiation) {
  {  // TLS 1.1 only: the server's protocol_version alert, not a client that cannot offer it
    TlsConn t(port(), {TLS1_1_VERSION, TLS1_1_VERSION, "DEFAULT:@SECLEVEL=0", true});
    ASSERT_FALSE(t.ok()) << "a TLS 1.1 client got in with " << t.protocol();
    EXPECT_NE(t.error.message().find("protocol version"), std::string::npos) << t.error.message();
  }
  {  // The same client allowed TLS 1.2 gets in, with ECDHE and an AEAD cipher
    TlsConn t(port(), {TLS1_1_VERSION, TLS1_2_VERSION, "DEFAULT:@SECLEVEL=0", true});
    ASSERT_TRUE(t.ok()) << t.error.message();
    EXPECT_EQ(t.protocol(), "TLSv1.2");
    EXPECT_EQ(t.cipher().rfind("ECDHE-", 0), 0u) << t.cipher();
    EXPECT_TRUE(t.cipher().find("GCM") != std::string::npos || t.cipher().find("CHACHA20") != std::string::npos)
        << t.cipher();
    EXPECT_EQ(t.get("/healthz"), 200);
    // Client-initiated renegotiation is refused; the server stays up.
    auto reneg = t.renegotiate();
    EXPECT_NE(reneg.message().find("no renegotiation"), std::string::npos) << "renegotiation: " << reneg.message();
  }
  for (const char* weak : {"AES128-GCM-SHA256", "AES256-SHA256", "ECDHE-RSA-AES128-SHA", "ECDHE-RSA-AES256-SHA384"}) {
    TlsConn t(port(), {0, TLS1_2_VERSION, weak, true});
    ASSERT_FALSE(t.ok()) << weak << " was accepted as " << t.cipher();
    EXPECT_NE(t.error.message().find("handshake failure"), std::string::npos) << weak << ": " << t.error.message();
  }
  {
    TlsConn t(port(), {0, TLS1_2_VERSION, "ECDHE-RSA-CHACHA20-POLY1305", false});
    EXPECT_TRUE(t.ok()) << t.error.message();
  }
  HttpClient c(https_opts(port(), cert_.crt));
  EXPECT_EQ(c.get("/healthz").status, 200);
}

TEST_F(ServerTls, SighupSwapsTheCertificateForNewConnectionsAndKeepsItOnABrokenFile) {
  const std::string fp_a = pem_fingerprint(cert_.crt);
  TlsConn before(port());
  ASSERT_TRUE(before.ok()) << before.error.message();
  EXPECT_EQ(before.fingerprint(), fp_a);
  EXPECT_EQ(before.get("/healthz"), 200);

  const pid_t pid = child_server_pid(srv_->data_dir());
  ASSERT_GT(pid, 0) << "cannot find the server's pid";
  auto log = [this] { return srv_->log(); };

  // A new certificate and key replace the files; SIGHUP loads them.
  Cert b = make_cert(tmp_.path, "b");
  const std::string fp_b = pem_fingerprint(b.crt);
  ASSERT_NE(fp_a, fp_b);
  fs::copy_file(b.key, key_, fs::copy_options::overwrite_existing);
  fs::copy_file(b.crt, crt_, fs::copy_options::overwrite_existing);
  ASSERT_EQ(::kill(pid, SIGHUP), 0);
  ASSERT_TRUE(wait_for_log(log, "TLS certificate reloaded", 1)) << log();
  {
    TlsConn after(port());
    ASSERT_TRUE(after.ok()) << after.error.message();
    EXPECT_EQ(after.fingerprint(), fp_b);
    HttpClient c(https_opts(port(), b.crt));  // verifies against the new certificate only
    EXPECT_EQ(c.get("/healthz").status, 200);
  }
  // The connection opened before the reload keeps its session and keeps working.
  EXPECT_EQ(before.get("/healthz"), 200);
  EXPECT_EQ(before.fingerprint(), fp_a);

  // A broken certificate file: the reload fails, logged; new connections still get B.
  tsm::write_file_atomic(crt_, "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n");
  ASSERT_EQ(::kill(pid, SIGHUP), 0);
  ASSERT_TRUE(wait_for_log(log, "TLS certificate reload failed", 1)) << log();
  {
    TlsConn t(port());
    ASSERT_TRUE(t.ok()) << t.error.message();
    EXPECT_EQ(t.fingerprint(), fp_b);
  }
  // A certificate whose key is not the one in the key file: refused the same way.
  Cert c3 = make_cert(tmp_.path, "c");
  fs::copy_file(c3.crt, crt_, fs::copy_options::overwrite_existing);
  ASSERT_EQ(::kill(pid, SIGHUP), 0);
  ASSERT_TRUE(wait_for_log(log, "TLS certificate reload failed", 2)) << log();
  EXPECT_NE(log().find("does not belong to the certificate"), std::string::npos) << log();
  {
    TlsConn t(port());
    ASSERT_TRUE(t.ok()) << t.error.message();
    EXPECT_EQ(t.fingerprint(), fp_b);
    EXPECT_EQ(t.get("/healthz"), 200);
  }
  EXPECT_EQ(count_of(log(), "TLS certificate reloaded"), 1u);
  EXPECT_EQ(srv_->stop(), 0) << log();
}

TEST_F(ServerTls, TheCliAndTheAgentSpeakTlsToIt) {
  const std::string url = "https://localhost:" + std::to_string(port());
  // The CLI trusts the system store, so it is given the certificate through OpenSSL's SSL_CERT_FILE.
  const std::string cli = kBin + "/tensorslm";
  const std::string npy = tmp_.path + "/e.npy";
  write_bytes(npy, npy_of(test_matrix(256, 64)));
  CmdResult up = run("SSL_CERT_FILE=" + cert_.crt + " " + cli + " upload " + npy + " --server " + url + " --json");
  ASSERT_EQ(up.rc, 0) << up.out;
  EXPECT_EQ(json::parse(up.out).at("sha256"), tsm::sha256_file(npy)) << up.out;
  CmdResult models = run("SSL_CERT_FILE=" + cert_.crt + " " + cli + " models --server " + url + " --json");
  EXPECT_EQ(models.rc, 0) << models.out;
  CmdResult untrusted = run("SSL_CERT_FILE=/nonexistent " + cli + " models --server " + url + " --json");
  EXPECT_NE(untrusted.rc, 0) << untrusted.out;

  // The agent (http.ca_file) pulls a model published over TLS, runs it and reports over TLS.
  HttpClient c(https_opts(port(), cert_.crt));
  const std::string fixture = std::string(TSM_FIXTURES_DIR) + "/gpt2-tiny";
  const std::string tar = tmp_.path + "/gpt2-tiny.tar";
  tsm::client::write_tar(fixture, tar);
  auto u = c.upload_file("/v1/uploads?format=tar&name=gpt2-tiny", tar, "application/x-tar");
  ASSERT_EQ(u.status, 201) << u.body;
  json job = {{"upload", json::parse(u.body).at("id")},
              {"method", "tt-token"},
              {"tensors", {"transformer.wte.weight"}},
              {"params", {{"shape", {4, 4, 4}}, {"eps", 0.2}}},
              {"publish", {{"model", "tls-tiny"}, {"tag", "v1"}}}};
  json done = json::parse(c.post_json("/v1/jobs?wait=120", job.dump()).body);
  ASSERT_EQ(done.value("state", ""), "succeeded") << done.dump();

  json agent_cfg = {
      {"server", url},
      {"device_id", "pi-tls-1"},
      {"models", {"tls-tiny"}},
      {"poll_interval_s", 1},
      {"data_dir", tmp_.path + "/agent"},
      {"http", {{"max_attempts", 1}, {"connect_timeout_ms", 2000}, {"ca_file", cert_.crt}}},
      {"workload",
       {{"token_ids", {{464, 313, 286}}}, {"max_new_tokens", 2}, {"warmup", 0}, {"repetitions", 1}, {"threads", 1},
        {"idle_s", 0.1}, {"dense_ab", false}}},
      {"runtime", {{"embedding", "auto"}, {"head", "materialize"}, {"base_model_dir", fixture}}},
      {"energy", {{"source", "model"}, {"model_idle_w", 3.0}, {"model_max_w", 9.0}}}};
  const std::string cfg = tmp_.path + "/agent.json";
  tsm::write_file_atomic(cfg, agent_cfg.dump(2));
  CmdResult agent = run(kBin + "/tensorslm-agent --config " + cfg + " --once");
  ASSERT_EQ(agent.rc, 0) << agent.out;
  EXPECT_NE(agent.out.find("updated 1"), std::string::npos) << agent.out;
  json reps = json::parse(c.get("/v1/reports?model=tls-tiny").body).at("reports");
  ASSERT_EQ(reps.size(), 1u) << reps.dump(2);
  EXPECT_EQ(reps[0]["device"], "pi-tls-1");

  // Without the CA the agent refuses the server (and says so), nothing is downloaded.
  agent_cfg["http"].erase("ca_file");
  agent_cfg["data_dir"] = tmp_.path + "/agent2";
  tsm::write_file_atomic(cfg, agent_cfg.dump(2));
  CmdResult refused = run("SSL_CERT_FILE=/nonexistent " + kBin + "/tensorslm-agent --config " + cfg + " --once");
  EXPECT_NE(refused.rc, 0) << refused.out;
  EXPECT_EQ(count_files(tmp_.path + "/agent2/models"), 0);
}

TEST(ServerTlsStart, NonLoopbackWithoutTlsIsRefusedUnlessInsecureHttpIsGiven) {
  TempDir tmp;
  const auto tokens = token_config(tmp.path + "/tokens.json", json::object());
  {  // with tokens, without TLS
    RawServer s(tmp.path + "/refused", {"--listen", "0.0.0.0:0", "--config", tokens});
    ASSERT_FALSE(s.started()) << s.log();
    EXPECT_EQ(s.rc(), 1);
    auto out = lines(s.log());
    ASSERT_EQ(out.size(), 1u) << s.log();
    EXPECT_NE(out[0].find("refusing to serve plain HTTP on non-loopback address 0.0.0.0"), std::string::npos) << out[0];
    EXPECT_NE(out[0].find("--insecure-http"), std::string::npos) << out[0];
    EXPECT_NE(out[0].find("--tls-cert"), std::string::npos) << out[0];
    EXPECT_FALSE(fs::exists(tmp.path + "/refused/data/tensorslm.db"));
  }
  {  // without either: one line naming both
    RawServer s(tmp.path + "/refused2", {"--listen", "0.0.0.0:0"});
    ASSERT_FALSE(s.started()) << s.log();
    EXPECT_EQ(s.rc(), 1);
    auto out = lines(s.log());
    ASSERT_EQ(out.size(), 1u) << s.log();
    EXPECT_NE(out[0].find("without tokens and without TLS"), std::string::npos) << out[0];
    EXPECT_NE(out[0].find("--insecure-http"), std::string::npos) << out[0];
  }
  for (const char* loopback : {"127.0.0.2:0", "localhost:0"}) {  // all of 127.0.0.0/8 is loopback, so is "localhost"
    RawServer s(tmp.path + "/loopback", {"--listen", loopback});
    EXPECT_TRUE(s.started()) << loopback << ": " << s.log();
    EXPECT_EQ(s.log().find("insecure_http"), std::string::npos) << s.log();
    EXPECT_EQ(s.stop(), 0);
  }
  const std::string warning = "insecure_http: serving plain HTTP on 0.0.0.0";
  {  // the flag
    RawServer s(tmp.path + "/flag", {"--listen", "0.0.0.0:0", "--insecure-http", "--config", tokens});
    ASSERT_TRUE(s.started()) << s.log();
    EXPECT_EQ(GET(s.port(), "/healthz").status, 200);
    EXPECT_EQ(count_of(s.log(), warning), 1u) << s.log();
    EXPECT_EQ(s.stop(), 0);
  }
  {  // the config key, at every start
    const auto cfg = token_config(tmp.path + "/insecure.json", {{"listen", "0.0.0.0:0"}, {"insecure_http", true}});
    for (int start = 0; start < 2; ++start) {
      RawServer s(tmp.path + "/key", {"--config", cfg});
      ASSERT_TRUE(s.started()) << s.log();
      EXPECT_EQ(count_of(s.log(), warning), 1u) << s.log();
      EXPECT_EQ(s.stop(), 0);
    }
  }
  {  // TLS from the config keys: accepted on 0.0.0.0, no warning, HTTPS only
    Cert c = make_cert(tmp.path, "srv");
    const auto cfg = token_config(tmp.path + "/tls.json", {{"listen", "0.0.0.0:0"}, {"tls_cert", c.crt}, {"tls_key", c.key}});
    RawServer s(tmp.path + "/tls", {"--config", cfg});
    ASSERT_TRUE(s.started()) << s.log();
    EXPECT_EQ(s.log().find("insecure_http"), std::string::npos) << s.log();
    HttpClient h(https_opts(s.port(), c.crt));
    EXPECT_EQ(h.get("/healthz").status, 200);
    EXPECT_EQ(GET(s.port(), "/healthz").status, 400);
    EXPECT_EQ(s.stop(), 0);
  }
}

TEST(ServerTlsStart, BadCertificateOrKeyFilesStopTheStartWithOneLine) {
  TempDir tmp;
  Cert a = make_cert(tmp.path, "a");
  Cert b = make_cert(tmp.path, "b");
  const std::string garbage = tmp.path + "/garbage.pem";
  write_bytes(garbage, "this is not PEM\n");
  struct Case {
    const char* name;
    std::vector<std::string> args;
    std::string expect;  ///< in the error line
  };
  const std::vector<Case> cases = {
      {"missing cert", {"--tls-cert", tmp.path + "/nope.crt", "--tls-key", a.key}, "nope.crt': no such file"},
      {"missing key", {"--tls-cert", a.crt, "--tls-key", tmp.path + "/nope.key"}, "nope.key': no such file"},
      {"cert is a directory", {"--tls-cert", tmp.path, "--tls-key", a.key}, "not a regular file"},
      {"garbage cert", {"--tls-cert", garbage, "--tls-key", a.key}, "not a PEM certificate chain"},
      {"garbage key", {"--tls-cert", a.crt, "--tls-key", garbage}, "garbage.pem': not an unencrypted PEM private key"},
      {"key of another certificate", {"--tls-cert", a.crt, "--tls-key", b.key}, "b.key' does not belong to the certificate"},
      {"cert without key", {"--tls-cert", a.crt}, "tls_cert is set without tls_key"},
      {"key without cert", {"--tls-key", a.key}, "tls_key is set without tls_cert"},
  };
  int n = 0;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto args = c.args;
    args.insert(args.begin(), {"--listen", "127.0.0.1:0"});
    RawServer s(tmp.path + "/run" + std::to_string(n++), args);
    ASSERT_FALSE(s.started()) << s.log();
    EXPECT_EQ(s.rc(), 1);
    auto out = lines(s.log());
    ASSERT_EQ(out.size(), 1u) << s.log();
    EXPECT_EQ(out[0].rfind("error: ", 0), 0u) << out[0];
    EXPECT_NE(out[0].find(c.expect), std::string::npos) << out[0];
  }
}

}  // namespace

// HttpClient over https against an in-test Beast TLS server on loopback with a self-signed
// certificate made by the openssl tool: verified with the certificate as CA, refused without it or
// for a host name the certificate does not name, accepted with verification off.
#include <gtest/gtest.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <filesystem>
#include <thread>

#include "lib/http_client.h"

using namespace tsm::client;
namespace fs = std::filesystem;
namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;

namespace {

class TlsServer {
 public:
  TlsServer(const std::string& cert, const std::string& key)
      : ctx_(ssl::context::tls_server), acc_(ioc_, {net::ip::make_address("127.0.0.1"), 0}) {
    ctx_.use_certificate_chain_file(cert);
    ctx_.use_private_key_file(key, ssl::context::pem);
    port_ = acc_.local_endpoint().port();
    th_ = std::thread([this] {
      while (!stop_) {
        net::ip::tcp::socket sock(ioc_);
        beast::error_code ec;
        acc_.accept(sock, ec);
        if (ec || stop_) continue;
        beast::ssl_stream<net::ip::tcp::socket> s(std::move(sock), ctx_);
        s.handshake(ssl::stream_base::server, ec);
        if (ec) continue;  // the client refused our certificate
        beast::flat_buffer b;
        http::request<http::string_body> req;
        http::read(s, b, req, ec);
        if (ec) continue;
        ++served_;
        http::response<http::string_body> res{http::status::ok, 11};
        res.body() = "secure " + std::string(req.target());
        res.prepare_payload();
        res.keep_alive(false);
        http::write(s, res, ec);
        s.shutdown(ec);
      }
    });
  }
  ~TlsServer() {
    stop_ = true;
    net::io_context io;
    net::ip::tcp::socket s(io);
    beast::error_code ec;
    s.connect({net::ip::make_address("127.0.0.1"), port_}, ec);
    th_.join();
  }
  unsigned short port() const { return port_; }
  int served() const { return served_; }

 private:
  net::io_context ioc_;
  ssl::context ctx_;
  net::ip::tcp::acceptor acc_;
  unsigned short port_;
  std::atomic<bool> stop_{false};
  std::atomic<int> served_{0};
  std::thread th_;
};

}  // namespace

TEST(HttpTls, VerifiesCertificateAndHostName) {
  auto dir = fs::temp_directory_path() / ("tsm_tls_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string cert = (dir / "cert.pem").string(), key = (dir / "key.pem").string();
  const std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -keyout " + key + " -out " + cert +
                          " -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost >/dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0) GTEST_SKIP() << "the openssl tool cannot make a test certificate";
  TlsServer srv(cert, key);
  const std::string port = std::to_string(srv.port());

  HttpOptions o;
  o.server = "https://localhost:" + port;
  o.ca_file = cert;
  o.max_attempts = 1;
  {
    HttpClient c(o);
    auto r = c.get("/v1/models");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "secure /v1/models");
  }
  {  // the system store does not trust a self-signed certificate
    HttpOptions no_ca = o;
    no_ca.ca_file.clear();
    HttpClient c(no_ca);
    try {
      c.get("/x");
      FAIL() << "an untrusted certificate was accepted";
    } catch (const NetworkError& e) {
      EXPECT_NE(std::string(e.what()).find("TLS handshake"), std::string::npos) << e.what();
    }
  }
  {  // trusted certificate, wrong name: 127.0.0.1 is not in its subjectAltName
    HttpOptions by_ip = o;
    by_ip.server = "https://127.0.0.1:" + port;
    HttpClient c(by_ip);
    EXPECT_THROW(c.get("/x"), NetworkError);
  }
  {  // verification off (test servers only)
    HttpOptions off = o;
    off.server = "https://127.0.0.1:" + port;
    off.ca_file.clear();
    off.tls_verify = false;
    HttpClient c(off);
    EXPECT_EQ(c.get("/y").body, "secure /y");
  }
  EXPECT_EQ(srv.served(), 2);
  fs::remove_all(dir);
}

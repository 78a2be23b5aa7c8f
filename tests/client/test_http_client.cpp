// HttpClient against an in-test Beast server on loopback: bearer token, retries with backoff for
// idempotent calls only, timeouts, streaming download with sha256/size verification, upload.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/atomic_file.h"
#include "common/sha256.h"
#include "lib/http_client.h"
#include "support/loopback_server.h"

using namespace tsm::client;
using tsm::testing::LoopbackServer;
using tsm::testing::Reply;
namespace fs = std::filesystem;

namespace {
HttpOptions fast(const std::string& url) {
  HttpOptions o;
  o.server = url;
  o.backoff_base = std::chrono::milliseconds(5);
  o.backoff_max = std::chrono::milliseconds(20);
  o.io_timeout = std::chrono::milliseconds(2000);
  return o;
}
fs::path temp_dir(const std::string& name) {
  auto d = fs::temp_directory_path() / ("tsm_http_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}
size_t files_in(const fs::path& d) {
  return static_cast<size_t>(std::distance(fs::directory_iterator(d), fs::directory_iterator()));
}
}  // namespace

TEST(Url, ParsesAndRejects) {
  auto u = parse_url("https://example.org/api/");
  EXPECT_EQ(u.scheme, "https");
  EXPECT_EQ(u.host, "example.org");
  EXPECT_EQ(u.port, "443");
  EXPECT_EQ(u.base_path, "/api");
  auto v = parse_url("http://[::1]:8080");
  EXPECT_EQ(v.host, "::1");
  EXPECT_EQ(v.port, "8080");
  EXPECT_EQ(v.base_path, "");
  EXPECT_THROW(parse_url("ftp://x"), tsm::ParamError);
  EXPECT_THROW(parse_url("127.0.0.1:80"), tsm::ParamError);
  EXPECT_THROW(parse_url("http://:80"), tsm::ParamError);
  EXPECT_THROW(parse_url("http://h:99999"), tsm::ParamError);
  EXPECT_THROW(parse_url("http://h:8x"), tsm::ParamError);
  EXPECT_THROW(parse_url("http://u:p@h"), tsm::ParamError);
  EXPECT_EQ(url_encode("a b/c"), "a%20b%2Fc");
}

TEST(HttpClient, GetSendsBearerTokenAndReadsBody) {
  LoopbackServer srv([](const auto& req) {
    Reply r;
    r.body = std::string(req[boost::beast::http::field::authorization]) + "|" + std::string(req.target());
    return r;
  });
  auto o = fast(srv.url() + "/base");
  o.token = "s3cret";
  HttpClient c(o);
  auto r = c.get("/v1/models");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "Bearer s3cret|/base/v1/models");
}

TEST(HttpClient, RetriesIdempotentOn503ThenSucceeds) {
  std::atomic<int> n{0};
  LoopbackServer srv([&](const auto&) {
    Reply r;
    if (n++ < 2) r.status = 503; else r.body = "ok";
    return r;
  });
  HttpClient c(fast(srv.url()));
  auto r = c.get("/x");
  EXPECT_EQ(r.body, "ok");
  EXPECT_EQ(srv.requests(), 3);
}

TEST(HttpClient, GivesUpAfterMaxAttempts) {
  LoopbackServer srv([](const auto&) { return Reply{503, R"({"title":"busy","detail":"try later"})"}; });
  auto o = fast(srv.url());
  o.max_attempts = 3;
  HttpClient c(o);
  try {
    c.get("/x");
    FAIL() << "expected HttpError";
  } catch (const HttpError& e) {
    EXPECT_EQ(e.status(), 503);
    EXPECT_NE(std::string(e.what()).find("try later"), std::string::npos) << e.what();
  }
  EXPECT_EQ(srv.requests(), 3);
}

TEST(HttpClient, PostIsNotRetriedOn5xx) {
  LoopbackServer srv([](const auto&) { return Reply{503, "no"}; });
  HttpClient c(fast(srv.url()));
  EXPECT_THROW(c.post_json("/v1/jobs", "{}"), HttpError);
  EXPECT_EQ(srv.requests(), 1);
}

TEST(HttpClient, PostMarkedIdempotentIsRetried) {
  std::atomic<int> n{0};
  LoopbackServer srv([&](const auto& req) { return n++ == 0 ? Reply{502, ""} : Reply{201, req.body()}; });
  HttpClient c(fast(srv.url()));
  HttpRequest r;
  r.method = "POST";
  r.target = "/v1/devices/d/reports";
  r.body = "payload";
  r.idempotent = true;
  auto res = c.send(r);
  EXPECT_EQ(res.status, 201);
  EXPECT_EQ(res.body, "payload");
  EXPECT_EQ(srv.requests(), 2);
}

TEST(HttpClient, TimeoutIsANetworkErrorAndRetried) {
  LoopbackServer srv([](const auto&) {
    Reply r;
    r.delay = std::chrono::milliseconds(600);
    return r;
  });
  auto o = fast(srv.url());
  o.io_timeout = std::chrono::milliseconds(150);
  o.max_attempts = 2;
  HttpClient c(o);
  EXPECT_THROW(c.get("/slow"), NetworkError);
  // The one-thread server reads the second attempt only after it slept through the first.
  std::this_thread::sleep_for(std::chrono::milliseconds(900));
  EXPECT_EQ(srv.requests(), 2);
}

TEST(HttpClient, ConnectionRefusedIsANetworkError) {
  unsigned short port;
  {
    LoopbackServer srv([](const auto&) { return Reply{}; });
    port = static_cast<unsigned short>(std::stoi(srv.url().substr(srv.url().rfind(':') + 1)));
  }
  auto o = fast("http://127.0.0.1:" + std::to_string(port));
  o.max_attempts = 2;
  HttpClient c(o);
  EXPECT_THROW(c.get("/"), NetworkError);
}

TEST(HttpClient, BackoffIsBoundedAndJittered) {
  HttpOptions o;
  o.backoff_base = std::chrono::milliseconds(100);
  o.backoff_max = std::chrono::milliseconds(1000);
  HttpClient c(o);
  std::set<int64_t> distinct;
  for (int k = 0; k < 8; ++k)
    for (int i = 0; i < 50; ++i) {
      auto d = c.backoff_delay(k).count();
      EXPECT_GE(d, 0);
      EXPECT_LE(d, std::min<int64_t>(1000, 100LL << k));
      distinct.insert(d);
    }
  EXPECT_GT(distinct.size(), 20u);  // jitter, not a fixed schedule
}

TEST(HttpClient, DownloadVerifiesShaAndRenamesAtomically) {
  std::string blob(300000, '\0');
  for (size_t i = 0; i < blob.size(); ++i) blob[i] = static_cast<char>((i * 7919) & 0xff);
  const std::string sha = tsm::sha256_hex(blob);
  LoopbackServer srv([&](const auto& req) {
    if (req[boost::beast::http::field::if_none_match] == "\"" + sha + "\"") return Reply{304, ""};
    Reply r{200, blob};
    r.headers.push_back({"ETag", "\"" + sha + "\""});
    return r;
  });
  auto dir = temp_dir("dl");
  HttpClient c(fast(srv.url()));
  uint64_t last = 0, total_seen = 0;
  auto res = c.download("/v1/artifacts/a", (dir / "m.tsm").string(), blob.size(), sha, "",
                        [&](uint64_t d, uint64_t t) {
                          EXPECT_GE(d, last);
                          last = d;
                          total_seen = t;
                        });
  EXPECT_FALSE(res.not_modified);
  EXPECT_EQ(res.sha256, sha);
  EXPECT_EQ(res.bytes, blob.size());
  EXPECT_EQ(last, blob.size());
  EXPECT_EQ(total_seen, blob.size());
  EXPECT_EQ(tsm::read_file((dir / "m.tsm").string()), blob);
  EXPECT_EQ(files_in(dir), 1u);
  auto again = c.download("/v1/artifacts/a", (dir / "m2.tsm").string(), std::nullopt, "", "\"" + sha + "\"");
  EXPECT_TRUE(again.not_modified);
  EXPECT_FALSE(fs::exists(dir / "m2.tsm"));
  fs::remove_all(dir);
}

TEST(HttpClient, DownloadShaMismatchKeepsNothingAndOldFileSurvives) {
  std::string blob(100000, 'x');
  LoopbackServer srv([&](const auto&) { return Reply{200, blob}; });
  auto dir = temp_dir("bad");
  tsm::write_file_atomic((dir / "m.tsm").string(), "previous model");
  HttpClient c(fast(srv.url()));
  std::string wrong = tsm::sha256_hex("something else");
  EXPECT_THROW(c.download("/a", (dir / "m.tsm").string(), blob.size(), wrong), IntegrityError);
  EXPECT_EQ(tsm::read_file((dir / "m.tsm").string()), "previous model");
  EXPECT_EQ(files_in(dir), 1u);  // no temp file left behind
  EXPECT_EQ(srv.requests(), 1);  // integrity failures are not retried
  // Size promised by the manifest differs from the body.
  EXPECT_THROW(c.download("/a", (dir / "n.tsm").string(), blob.size() + 1, ""), IntegrityError);
  EXPECT_FALSE(fs::exists(dir / "n.tsm"));
  EXPECT_EQ(files_in(dir), 1u);
  fs::remove_all(dir);
}

TEST(HttpClient, DownloadErrorStatusThrowsWithProblemDetail) {
  LoopbackServer srv([](const auto&) {
    Reply r{404, R"({"type":"about:blank","title":"Not Found","status":404,"detail":"no artifact 'zz'"})"};
    r.headers.push_back({"Content-Type", "application/problem+json"});
    return r;
  });
  auto dir = temp_dir("404");
  HttpClient c(fast(srv.url()));
  try {
    c.download("/v1/artifacts/zz", (dir / "x").string());
    FAIL();
  } catch (const HttpError& e) {
    EXPECT_EQ(e.status(), 404);
    EXPECT_NE(std::string(e.what()).find("no artifact 'zz'"), std::string::npos);
  }
  EXPECT_EQ(files_in(dir), 0u);
  fs::remove_all(dir);
}

TEST(HttpClient, UploadStreamsTheFileWithProgress) {
  auto dir = temp_dir("up");
  std::string data(700000, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i % 251);
  tsm::write_file_atomic((dir / "in.bin").string(), data);
  LoopbackServer srv([](const auto& req) {
    return Reply{201, std::string(R"({"sha256":")") + tsm::sha256_hex(req.body()) + "\",\"ct\":\"" +
                          std::string(req[boost::beast::http::field::content_type]) + "\"}"};
  });
  HttpClient c(fast(srv.url()));
  uint64_t last = 0;
  int calls = 0;
  auto r = c.upload_file("/v1/uploads", (dir / "in.bin").string(), "application/octet-stream", [&](uint64_t d, uint64_t t) {
    EXPECT_EQ(t, data.size());
    EXPECT_GE(d, last);
    last = d;
    ++calls;
  });
  EXPECT_EQ(r.status, 201);
  EXPECT_NE(r.body.find(tsm::sha256_hex(data)), std::string::npos);
  EXPECT_NE(r.body.find("application/octet-stream"), std::string::npos);
  EXPECT_EQ(last, data.size());
  EXPECT_GE(calls, 2);
  EXPECT_THROW(c.upload_file("/v1/uploads", (dir / "missing").string(), "x"), tsm::Error);
  fs::remove_all(dir);
}

TEST(HttpClient, ProblemTextFallsBackToBody) {
  EXPECT_EQ(problem_text(R"({"title":"T","detail":"D"})"), "D");
  EXPECT_EQ(problem_text(R"({"title":"T"})"), "T");
  EXPECT_EQ(problem_text("plain"), "plain");
  EXPECT_EQ(problem_text("{broken"), "{broken");
  EXPECT_TRUE(retryable_status(503));
  EXPECT_FALSE(retryable_status(404));
}

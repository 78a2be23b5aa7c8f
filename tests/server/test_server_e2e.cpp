// End to end against a real tensorslm-server child process: the GPT-2-size embedding path with
// curl and with the C++ client (upload, tt-token job, download, decode, error equals the job's and
// the CLI's), artifact HTTP semantics (ETag, 304, HEAD, Range, safetensors export), publishing and
// the latest manifest, device reports and their summary, concurrent clients, the OpenAPI document.
#include <google/protobuf/util/json_util.h>

#include "support/test_paths.h"
#include "pipeline/compress.h"
#include "methods/method_table.h"
#include "common/sha256.h"
#include "formats/artifact_io.h"
#include "formats/safetensors.h"
#include "metrics/metrics.h"
#include "report.pb.h"
#include "server_harness.h"

using namespace tsm;
using namespace tsm::test;

namespace {

std::string job_body(const std::string& upload, const json& extra = json::object()) {
  json j = {{"upload", upload}, {"method", "tt-token"}, {"params", {{"shape", {8, 8, 12}}, {"ranks", {4, 4}}}}};
  for (auto it = extra.begin(); it != extra.end(); ++it) j[it.key()] = it.value();
  return j.dump();
}

}  // namespace

TEST(ServerE2E, Gpt2EmbeddingWholePathMatchesCli) {
  TempDir tmp;
  const MatrixRM W = test_matrix(50257, 768);
  const std::string npy = tmp.path + "/wte.npy";
  write_bytes(npy, npy_of(W));
  ServerProcess srv(tmp.path + "/data");

  // Upload with curl (streamed, hashed while streaming).
  int rc = 0;
  std::string out = sh("curl -sS -X POST --data-binary @" + npy + " -H 'Content-Type: application/x-npy' '" + srv.url() +
                           "/v1/uploads?name=wte'",
                       &rc);
  ASSERT_EQ(rc, 0) << out;
  json up = json::parse(out);
  ASSERT_EQ(up["format"], "npy") << out;
  EXPECT_EQ(up["sha256"], sha256_file(npy));
  EXPECT_EQ(up["tensors"][0]["shape"], json({50257, 768}));

  // Submit with the C++ client and wait for the result.
  auto r = POST(srv.port(), "/v1/jobs?wait=300", job_body(up["id"]), {{"Content-Type", "application/json"}});
  ASSERT_EQ(r.status, 200) << r.body;
  json job = r.js();
  ASSERT_EQ(job["state"], "succeeded") << r.body;
  EXPECT_DOUBLE_EQ(job["progress"].get<double>(), 1.0);
  EXPECT_TRUE(job["timings"].contains("compress_s"));
  const std::string sha = job["result"]["artifact"]["sha256"];
  const double job_err = job["result"]["tensors"][0]["metrics"]["rel_error"];

  // Download (C++ client), check the content address, decode and measure independently.
  auto a = GET(srv.port(), "/v1/artifacts/" + sha);
  ASSERT_EQ(a.status, 200);
  EXPECT_EQ(sha256_hex(a.body), sha);
  EXPECT_EQ(a.header("etag"), "\"" + sha + "\"");
  v1::Artifact art = parse_artifact(a.body);
  ASSERT_EQ(art.tensors_size(), 1);
  MatrixRM D = decode_tensor(art.tensors(0));
  ASSERT_EQ(D.rows(), 50257);
  ASSERT_EQ(D.cols(), 768);
  const double measured = error_stats(W, D).rel_error;
  EXPECT_NEAR(measured, job_err, 1e-6 * std::max(1.0, job_err));
  EXPECT_GT(measured, 0.0);
  EXPECT_LT(measured, 1.0);

  // The same download with curl is byte-identical.
  sh("curl -sS -o " + tmp.path + "/a.tsm " + srv.url() + "/v1/artifacts/" + sha, &rc);
  EXPECT_EQ(sha256_file(tmp.path + "/a.tsm"), sha);

  // The CLI offline on the same file reports the same error.
  std::string cli = sh(std::string(TSM_BIN_DIR) + "/tensorslm compress " + npy +
                           " --method tt-token --shape 8,8,12 --ranks 4,4 --json -o " + tmp.path + "/cli.tsm",
                       &rc);
  ASSERT_EQ(rc, 0) << cli;
  json cj = json::parse(cli);
  EXPECT_NEAR(cj["rel_error"].get<double>(), job_err, 1e-6 * std::max(1.0, job_err));
  EXPECT_EQ(cj["bytes"], job["result"]["tensors"][0]["metrics"]["stored_bytes"]);

  // Conditional GET, HEAD, ranges, export.
  EXPECT_EQ(GET(srv.port(), "/v1/artifacts/" + sha, {{"If-None-Match", "\"" + sha + "\""}}).status, 304);
  auto h = http_request(srv.port(), http::verb::head, "/v1/artifacts/" + sha);
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.header("content-length"), std::to_string(a.body.size()));
  EXPECT_TRUE(h.body.empty());
  auto part = GET(srv.port(), "/v1/artifacts/" + sha, {{"Range", "bytes=100-199"}});
  EXPECT_EQ(part.status, 206);
  EXPECT_EQ(part.body, a.body.substr(100, 100));
  EXPECT_EQ(part.header("content-range"), "bytes 100-199/" + std::to_string(a.body.size()));
  auto tail = GET(srv.port(), "/v1/artifacts/" + sha, {{"Range", "bytes=-10"}});
  EXPECT_EQ(tail.body, a.body.substr(a.body.size() - 10));
  EXPECT_EQ(GET(srv.port(), "/v1/artifacts/" + sha, {{"Range", "bytes=999999999-"}}).status, 416);
  auto st = GET(srv.port(), "/v1/artifacts/" + sha + "?format=safetensors");
  ASSERT_EQ(st.status, 200) << st.body;
  auto holder = std::make_shared<std::string>(st.body);
  auto f = SafetensorsFile::parse({reinterpret_cast<const std::byte*>(holder->data()), holder->size()}, holder);
  EXPECT_FALSE(f.tensors().empty());
  EXPECT_EQ(GET(srv.port(), "/v1/artifacts/" + std::string(64, '0')).status, 404);
}

TEST(ServerE2E, ConcurrentClientsPublishAndReports) {
  TempDir tmp;
  ServerProcess srv(tmp.path + "/data", {{"TENSORSLM_WORKERS", "2"}});
  const int kClients = 6;
  std::vector<std::string> states(kClients), shas(kClients);
  std::vector<std::thread> ts;
  for (int c = 0; c < kClients; ++c)
    ts.emplace_back([&, c] {
      auto up = POST(srv.port(), "/v1/uploads?name=m" + std::to_string(c), npy_of(test_matrix(300, 96, 100 + c)));
      if (up.status != 201) return;
      json body = json::parse(job_body(up.js()["id"]));
      body["params"]["shape"] = {4, 4, 6};
      auto r = POST(srv.port(), "/v1/jobs?wait=120", body.dump());
      states[c] = r.js().value("state", "");
      if (states[c] == "succeeded") shas[c] = r.js()["result"]["artifact"]["sha256"];
    });
  for (auto& t : ts) t.join();
  for (int c = 0; c < kClients; ++c) EXPECT_EQ(states[c], "succeeded") << c;
  std::set<std::string> distinct(shas.begin(), shas.end());
  EXPECT_EQ(distinct.size(), static_cast<size_t>(kClients));
  auto list = GET(srv.port(), "/v1/jobs?state=succeeded&limit=4").js();
  EXPECT_EQ(list["jobs"].size(), 4u);
  ASSERT_TRUE(list.contains("next_cursor"));
  auto rest = GET(srv.port(), "/v1/jobs?state=succeeded&cursor=" + list["next_cursor"].get<std::string>()).js();
  EXPECT_EQ(rest["jobs"].size(), static_cast<size_t>(kClients - 4));

  // Publish two versions; agents poll latest with If-None-Match.
  auto up = POST(srv.port(), "/v1/uploads", npy_of(test_matrix(200, 96, 1))).js();
  json pub = json::parse(job_body(up["id"]));
  pub["params"]["shape"] = {4, 4, 6};
  pub["publish"] = {{"model", "gpt2-emb"}, {"tag", "v1"}};
  ASSERT_EQ(POST(srv.port(), "/v1/jobs?wait=60", pub.dump()).js()["state"], "succeeded");
  auto m1 = GET(srv.port(), "/v1/models/gpt2-emb/latest");
  ASSERT_EQ(m1.status, 200);
  EXPECT_EQ(m1.js()["tag"], "v1");
  EXPECT_EQ(GET(srv.port(), "/v1/models/gpt2-emb/latest", {{"If-None-Match", m1.header("etag")}}).status, 304);
  pub["publish"]["tag"] = "v2";
  pub["params"]["ranks"] = {2, 2};
  ASSERT_EQ(POST(srv.port(), "/v1/jobs?wait=60", pub.dump()).js()["state"], "succeeded");
  auto m2 = GET(srv.port(), "/v1/models/gpt2-emb/latest", {{"If-None-Match", m1.header("etag")}});
  EXPECT_EQ(m2.status, 200);
  EXPECT_EQ(m2.js()["tag"], "v2");
  EXPECT_NE(m2.header("etag"), m1.header("etag"));
  EXPECT_EQ(GET(srv.port(), m2.js()["url"].get<std::string>()).status, 200);
  EXPECT_EQ(GET(srv.port(), "/v1/models/gpt2-emb").js()["versions"].size(), 2u);
  EXPECT_EQ(GET(srv.port(), "/v1/models/nope/latest").status, 404);

  // Device reports: protobuf and JSON forms; filters; summary percentiles.
  for (int i = 0; i < 10; ++i) {
    tensorslm::v1::DeviceReport rep;
    rep.set_model("gpt2-emb");
    rep.set_tag("v2");
    auto* run = rep.add_runs();
    run->set_variant("compressed");
    run->set_tokens_per_s(10 + i);
    run->mutable_energy()->set_source("model");
    run->mutable_energy()->set_joules_per_query(2.0);
    auto* q = run->add_queries();
    q->set_total_ms(100 + i * 10);  // 100..190
    if (i % 2 == 0) {
      auto r = POST(srv.port(), "/v1/devices/pi5-a/reports", rep.SerializeAsString(), {{"Content-Type", "application/x-protobuf"}});
      ASSERT_EQ(r.status, 201) << r.body;
    } else {
      std::string js;
      (void)google::protobuf::util::MessageToJsonString(rep, &js);
      auto r = POST(srv.port(), "/v1/devices/pi5-a/reports", js, {{"Content-Type", "application/json"}});
      ASSERT_EQ(r.status, 201) << r.body;
    }
  }
  EXPECT_EQ(POST(srv.port(), "/v1/devices/pi5-a/reports", "{\"model\": 3}").status, 400);
  EXPECT_EQ(POST(srv.port(), "/v1/devices/pi5-a/reports", "{\"device\": {\"device_id\": \"other\"}, \"model\": \"m\"}").status, 422);
  EXPECT_EQ(GET(srv.port(), "/v1/reports?device=pi5-a").js()["reports"].size(), 10u);
  EXPECT_EQ(GET(srv.port(), "/v1/reports?device=nobody").js()["reports"].size(), 0u);
  auto sum = GET(srv.port(), "/v1/reports/summary?model=gpt2-emb").js();
  ASSERT_EQ(sum["groups"].size(), 1u);
  const auto& g = sum["groups"][0];
  EXPECT_EQ(g["reports"], 10);
  EXPECT_DOUBLE_EQ(g["latency_ms"]["p50"].get<double>(), 140.0);  // nearest rank of 100..190
  EXPECT_DOUBLE_EQ(g["latency_ms"]["p99"].get<double>(), 190.0);
  EXPECT_DOUBLE_EQ(g["tokens_per_s_mean"].get<double>(), 14.5);
  EXPECT_DOUBLE_EQ(g["joules_per_query_mean"].get<double>(), 2.0);

  // Operations endpoints.
  auto metrics = GET(srv.port(), "/metrics").body;
  EXPECT_NE(metrics.find("tensorslm_http_requests_total{route=\"/v1/jobs\",status=\"200\"}"), std::string::npos);
  EXPECT_NE(metrics.find("tensorslm_jobs{state=\"succeeded\"} 8"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("tensorslm_http_request_duration_seconds_bucket{le=\"+Inf\"}"), std::string::npos);
  EXPECT_EQ(GET(srv.port(), "/readyz").status, 200);
}

TEST(ServerE2E, OpenApiIsGeneratedFromRoutesAndMethodTable) {
  TempDir tmp;
  ServerProcess srv(tmp.path + "/data");
  auto doc = GET(srv.port(), "/v1/openapi.json").js();
  EXPECT_EQ(doc["openapi"], "3.1.0");
  for (const char* p : {"/v1/uploads", "/v1/uploads/{id}", "/v1/jobs", "/v1/jobs/{id}", "/v1/artifacts/{id}", "/v1/models",
                        "/v1/models/{name}/latest", "/v1/devices/{id}/reports", "/v1/reports", "/v1/reports/summary",
                        "/healthz", "/readyz", "/metrics"})
    EXPECT_TRUE(doc["paths"].contains(p)) << p;
  EXPECT_TRUE(doc["paths"]["/v1/jobs/{id}"].contains("delete"));
  for (const Codec* c : all_codecs()) {
    std::string name(c->name());
    ASSERT_TRUE(doc["x-methods"].contains(name)) << name;
    EXPECT_EQ(doc["x-methods"][name]["params"], c->param_schema());
  }
  auto methods = doc["components"]["schemas"]["JobRequest"]["properties"]["method"]["enum"];
  EXPECT_EQ(methods.size(), all_codecs().size());
}

// The upload body arrives in every framing a client may use, and each gives the same stored bytes:
// Content-Length in one piece, chunked (curl), and a Content-Length body trickled in small pieces
// after the header with a second request pipelined behind it on the same connection (the server
// must read exactly Content-Length bytes and answer both).
TEST(ServerE2E, UploadFramingsStoreTheSameBytes) {
  TempDir tmp;
  const std::string body = npy_of(test_matrix(300, 64));
  const std::string npy = tmp.path + "/a.npy", sha = sha256_hex(body);
  write_bytes(npy, body);
  ServerProcess srv(tmp.path + "/data");

  auto whole = POST(srv.port(), "/v1/uploads?name=a", body);
  ASSERT_EQ(whole.status, 201) << whole.body;
  EXPECT_EQ(whole.js()["sha256"], sha);

  int rc = 0;
  std::string out = sh("curl -sS -X POST -H 'Transfer-Encoding: chunked' --data-binary @" + npy + " '" + srv.url() +
                           "/v1/uploads?name=a'", &rc);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_EQ(json::parse(out)["sha256"], sha) << out;

  boost::asio::io_context ioc;
  boost::asio::ip::tcp::socket s(ioc);
  s.connect({boost::asio::ip::make_address("127.0.0.1"), srv.port()});
  s.set_option(boost::asio::ip::tcp::no_delay(true));
  std::string head = "POST /v1/uploads?name=a HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) +
                     "\r\n\r\n";
  boost::asio::write(s, boost::asio::buffer(head + body.substr(0, 100)));  // header with the start of the body
  for (size_t off = 100; off < body.size(); off += 7001) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    boost::asio::write(s, boost::asio::buffer(body.data() + off, std::min<size_t>(7001, body.size() - off)));
  }
  boost::asio::write(s, boost::asio::buffer(std::string("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")));
  beast::flat_buffer buf;
  http::response<http::string_body> r1, r2;
  http::read(s, buf, r1);
  http::read(s, buf, r2);
  EXPECT_EQ(r1.result_int(), 201) << r1.body();
  EXPECT_EQ(json::parse(r1.body())["sha256"], sha);
  EXPECT_EQ(r2.result_int(), 200) << r2.body();
  EXPECT_EQ(count_files(tmp.path + "/data/tmp"), 0);
}

// Per-tensor entries (what a planner emits): each tensor gets the method of the first entry whose
// pattern fully matches it, the rest the job's method; a bad parameter of an entry is a 422 naming
// it at POST; the whole-model form compresses what the entries match and passes the rest through.
TEST(ServerE2E, PerTensorEntriesMixMethods) {
  TempDir tmp;
  ServerProcess srv(tmp.path + "/data");
  std::vector<Tensor> ts = {Tensor::from_matrix("attn.q", test_matrix(64, 96, 1)),
                            Tensor::from_matrix("attn.k", test_matrix(64, 96, 2)),
                            Tensor::from_matrix("mlp.up", test_matrix(96, 64, 3))};
  auto up = POST(srv.port(), "/v1/uploads", safetensors_bytes(ts));
  ASSERT_EQ(up.status, 201) << up.body;
  const std::string id = up.js()["id"];
  const json body = {{"upload", id},
                     {"tensors", {"attn\\..*", "mlp.up"}},
                     {"method", "fp16"},
                     {"entries", {{{"tensor", "attn\\.q"}, {"method", "q4_0"}}, {{"tensor", "mlp\\..*"}, {"method", "q8_0"}}}}};
  auto r = POST(srv.port(), "/v1/jobs?wait=60", body.dump(), {{"Content-Type", "application/json"}});
  ASSERT_EQ(r.status, 200) << r.body;
  const json job = r.js();
  ASSERT_EQ(job["state"], "succeeded") << r.body;
  std::map<std::string, std::string> method_of;
  for (const auto& t : job["result"]["tensors"]) method_of[t["name"]] = t["method"];
  EXPECT_EQ(method_of, (std::map<std::string, std::string>{{"attn.q", "q4_0"}, {"attn.k", "fp16"}, {"mlp.up", "q8_0"}}));
  EXPECT_EQ(job["spec"]["entries"].size(), 2u);
  // The artifact says which methods it mixes.
  auto art = GET(srv.port(), job["result"]["artifact"]["url"].get<std::string>());
  ASSERT_EQ(art.status, 200);
  const v1::Artifact a = parse_artifact(art.body);
  EXPECT_EQ(a.method(), "q4_0+fp16+q8_0");
  // A bad entry parameter names the entry at POST; nothing is queued.
  json bad = body;
  bad["entries"][1]["params"] = {{"calibration", "sometimes"}};
  auto b = POST(srv.port(), "/v1/jobs", bad.dump(), {{"Content-Type", "application/json"}});
  EXPECT_EQ(b.status, 422) << b.body;
  EXPECT_EQ(b.js()["field"], "entries[1].params.calibration") << b.body;
  // Entries alone (no job method): only what they match is compressed.
  json only = {{"upload", id}, {"entries", {{{"tensor", "attn\\.k"}, {"method", "int8"}}}}};
  auto o = POST(srv.port(), "/v1/jobs?wait=60", only.dump(), {{"Content-Type", "application/json"}});
  ASSERT_EQ(o.js()["state"], "succeeded") << o.body;
  ASSERT_EQ(o.js()["result"]["tensors"].size(), 1u);
  EXPECT_EQ(o.js()["result"]["tensors"][0]["method"], "int8");
}

// Issue 16: a second publish of an existing model:tag used to make a second "v1" silently. It is
// a 409 at POST naming the job that holds the tag, unless publish.replace is true.
TEST(ServerE2E, PublishingAnExistingTagIsAConflict) {
  TempDir tmp;
  ServerProcess srv(tmp.path + "/data");
  auto up = POST(srv.port(), "/v1/uploads", npy_of(test_matrix(16, 64)));
  ASSERT_EQ(up.status, 201) << up.body;
  json j = {{"upload", up.js()["id"]}, {"method", "fp16"}, {"publish", {{"model", "m"}, {"tag", "v1"}}}};
  auto first = POST(srv.port(), "/v1/jobs?wait=60", j.dump());
  ASSERT_EQ(first.js()["state"], "succeeded") << first.body;
  auto again = POST(srv.port(), "/v1/jobs?wait=60", j.dump());
  EXPECT_EQ(again.status, 409) << again.body;
  EXPECT_EQ(again.js()["field"], "publish.tag");
  EXPECT_NE(again.js()["detail"].get<std::string>().find(first.js()["id"].get<std::string>()), std::string::npos) << again.body;
  j["publish"]["replace"] = true;
  auto replaced = POST(srv.port(), "/v1/jobs?wait=60", j.dump());
  EXPECT_EQ(replaced.js()["state"], "succeeded") << replaced.body;
  j["publish"]["replace"] = "yes";
  EXPECT_EQ(POST(srv.port(), "/v1/jobs", j.dump()).js()["field"], "publish.replace");
}

// Unit tests of the server's pure parts, without HTTP: route table, target parsing, the job queue
// order and bound, the SQLite store (migrations, recovery, pagination), the blob store's atomicity,
// config layering, job-spec validation, report percentiles, the Prometheus text.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <fstream>

#include "support/test_paths.h"
#include "api/report_summary.h"
#include "common/error.h"
#include "common/sha256.h"
#include "config/auth.h"
#include "config/config.h"
#include "http/metrics_registry.h"
#include "http/router.h"
#include "spec/job_spec.h"
#include "store/blob_store.h"
#include "store/orphan_sweep.h"
#include "store/sqlite_store.h"

using namespace tsm;
using namespace tsm::server;
namespace fs = std::filesystem;

namespace {
struct Tmp {
  std::string path;
  Tmp() {
    char t[] = "/tmp/tsm-server-unit-XXXXXX";
    path = ::mkdtemp(t);
  }
  ~Tmp() { fs::remove_all(path); }
};
}  // namespace

TEST(Router, MatchesParamsAnd405) {
  Router r;
  r.add(http::verb::get, "/v1/jobs/{id}", Perm::Read, [](RequestPtr, Respond) {});
  r.add(http::verb::delete_, "/v1/jobs/{id}", Perm::Jobs, [](RequestPtr, Respond) {});
  auto m = r.match(http::verb::get, "/v1/jobs/j_1");
  ASSERT_TRUE(m.route);
  EXPECT_EQ(m.params, std::vector<std::string>{"j_1"});
  EXPECT_TRUE(r.match(http::verb::head, "/v1/jobs/x").route);  // HEAD served by GET
  auto bad = r.match(http::verb::put, "/v1/jobs/x");
  EXPECT_FALSE(bad.route);
  EXPECT_EQ(bad.allow, "GET, DELETE");
  auto none = r.match(http::verb::get, "/v1/jobs/x/y");
  EXPECT_FALSE(none.route);
  EXPECT_TRUE(none.allow.empty());
}

TEST(Router, SplitTargetDecodes) {
  std::string path;
  std::map<std::string, std::string> q;
  ASSERT_TRUE(split_target("/v1/a%20b?x=1&name=a+b&flag&e=%3D", path, q));
  EXPECT_EQ(path, "/v1/a b");
  EXPECT_EQ(q["x"], "1");
  EXPECT_EQ(q["name"], "a b");
  EXPECT_EQ(q["e"], "=");
  EXPECT_TRUE(q.count("flag"));
  EXPECT_FALSE(split_target("/v1/%zz", path, q));
  EXPECT_FALSE(split_target("/v1/%2", path, q));
}

TEST(SqliteStore, MigratesRecoversAndPaginates) {
  Tmp t;
  std::string db = t.path + "/x.db";
  {
    SqliteStore s(db);
    EXPECT_EQ(s.schema_version(), SqliteStore::latest_schema_version());
    for (int i = 0; i < 5; ++i) {
      JobRecord j;
      j.id = "j_" + std::to_string(i);
      j.upload = "u";
      j.method = "tt-token";
      j.spec_pb = "";
      j.state = i < 2 ? tensorslm::v1::RUNNING : tensorslm::v1::QUEUED;
      s.insert_job(j);
      EXPECT_EQ(j.seq, i + 1);
    }
  }
  SqliteStore s(db);  // reopen: no migration runs twice
  EXPECT_EQ(s.schema_version(), SqliteStore::latest_schema_version());
  EXPECT_EQ(s.requeue_running(), 2);
  EXPECT_EQ(s.count_jobs_by_state()["queued"], 5);
  EXPECT_EQ(s.queued_jobs().size(), 5u);
  JobFilter f;
  f.limit = 2;
  auto page1 = s.list_jobs(f);
  ASSERT_EQ(page1.size(), 2u);
  f.after_seq = page1.back().seq;
  auto page2 = s.list_jobs(f);
  EXPECT_EQ(page2.front().id, "j_2");
  auto j = *s.get_job("j_3");
  j.state = tensorslm::v1::SUCCEEDED;
  j.result_json = "{\"a\":1}";
  s.update_job(j);
  EXPECT_EQ(s.get_job("j_3")->result_json, "{\"a\":1}");
  ModelVersion v1{"m", "v1", "aa", "j_3", 10, 0, 1}, v2{"m", "v2", "bb", "j_3", 10, 0, 2};
  s.insert_model_version(v1);
  s.insert_model_version(v2);
  EXPECT_EQ(s.model_versions("m").front().tag, "v2");
  UploadRecord u{"u_1", std::string(64, 'a'), "npy", "x", 3, "[]", 1};
  s.insert_upload(u);
  EXPECT_EQ(s.blob_refs(u.sha256), 1);
  EXPECT_TRUE(s.delete_upload("u_1"));
  EXPECT_EQ(s.blob_refs(u.sha256), 0);
}

// A database written by a version-2 server (job specs as JSON text) is migrated in place: each
// spec becomes a serialized tensorslm.v1.JobSpec that means the same request; a spec that cannot be
// converted stops the migration (nothing half-migrated) with the job named.
TEST(SqliteStore, Migration3ConvertsJsonSpecsToProto) {
  Tmp t;
  auto make_v2 = [&](const std::string& db, const std::string& spec_json) {
    sqlite3* h = nullptr;
    ASSERT_EQ(sqlite3_open(db.c_str(), &h), SQLITE_OK);
    const std::string sql = R"sql(
CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_unix INTEGER NOT NULL);
INSERT INTO schema_migrations VALUES (1, 0), (2, 0);
CREATE TABLE jobs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, upload TEXT NOT NULL, method TEXT NOT NULL,
  spec_json TEXT NOT NULL, priority INTEGER NOT NULL, state TEXT NOT NULL, progress REAL NOT NULL,
  error TEXT NOT NULL, result_json TEXT NOT NULL, timings_json TEXT NOT NULL, attempts INTEGER NOT NULL,
  created_unix INTEGER NOT NULL, started_unix INTEGER NOT NULL, finished_unix INTEGER NOT NULL);
CREATE INDEX jobs_state ON jobs(state);
INSERT INTO jobs(id,upload,method,spec_json,priority,state,progress,error,result_json,timings_json,attempts,
  created_unix,started_unix,finished_unix) VALUES ('j_1','u_1','saten',')sql" + spec_json + R"sql(',5,'queued',0,'','','',0,1,0,0);
)sql";
    ASSERT_EQ(sqlite3_exec(h, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(h);
    sqlite3_close(h);
  };
  const nlohmann::json spec = {{"upload", "u_1"}, {"method", "saten"}, {"tensors", {"fc1"}}, {"params", {{"ranks", 4}}},
                               {"priority", 5}, {"publish", {{"model", "m"}, {"tag", "v1"}}},
                               {"quality_gate", {{"max_kl", 0.5}}}, {"whole_model", true}};
  make_v2(t.path + "/old.db", spec.dump());
  {
    SqliteStore s(t.path + "/old.db");
    EXPECT_EQ(s.schema_version(), SqliteStore::latest_schema_version());
    auto j = s.get_job("j_1");
    ASSERT_TRUE(j);
    EXPECT_EQ(job_spec_json(stored_job_spec(j->spec_pb)), job_spec_json(parse_job_spec(spec)));
    EXPECT_EQ(j->priority, 5);
  }
  make_v2(t.path + "/bad.db", "{\"method\": 1}");
  try {
    SqliteStore s(t.path + "/bad.db");
    ADD_FAILURE() << "migration accepted an unconvertible spec";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("j_1"), std::string::npos) << e.what();
  }
  sqlite3* h = nullptr;
  sqlite3_open((t.path + "/bad.db").c_str(), &h);
  EXPECT_EQ(sqlite3_exec(h, "SELECT spec_json FROM jobs", nullptr, nullptr, nullptr), SQLITE_OK);  // rolled back
  sqlite3_close(h);
}

TEST(JobSpec, ProtoRoundTripKeepsEveryField) {
  const nlohmann::json body = {{"upload", "u_1"}, {"method", "saten"}, {"tensors", {"a", "b.*"}},
                               {"params", {{"ranks", {4, 8}}, {"sparsity", "2:4"}}}, {"priority", -3},
                               {"publish", {{"model", "m"}, {"tag", "v2"}}},
                               {"quality_gate", {{"max_rel_error", 0.25}, {"max_kl", 0.1}}}, {"whole_model", true},
                               {"calibrate", {{"sequences", 3}, {"adam_steps", 7}, {"whitening", "diagonal"}}},
                               {"entries", {{{"tensor", "a"}, {"method", "q8_0"}, {"params", {{"calibration", "none"}}}}}},
                               {"evaluation", {{"tokens", 512}, {"seed", 7}, {"compare", false}, {"sequences", {{1, 2, 3}, {4, 5}}}}}};
  const auto s = parse_job_spec(body);
  std::string bytes;
  ASSERT_TRUE(s.SerializeToString(&bytes));
  const nlohmann::json j = job_spec_json(stored_job_spec(bytes));
  EXPECT_EQ(j, job_spec_json(s));
  // The JSON view is today's: snake_case, numbers as numbers, params as the client sent them.
  EXPECT_EQ(j["params"], body["params"]);
  EXPECT_EQ(j["priority"], -3);
  EXPECT_EQ(j["calibrate"]["adam_steps"], 7);
  EXPECT_EQ(j["quality_gate"]["max_kl"], 0.1);
  EXPECT_EQ(j["publish"]["tag"], "v2");
  EXPECT_EQ(j["tensors"], body["tensors"]);
  EXPECT_EQ(j["entries"][0]["method"], "q8_0");
  EXPECT_EQ(j["entries"][0]["params"]["calibration"], "none");
  EXPECT_EQ(j["evaluation"]["sequences"], body["evaluation"]["sequences"]);
  EXPECT_EQ(j["evaluation"]["seed"], 7);
  EXPECT_EQ(j["evaluation"]["compare"], false);
  // Absent parts print as clients read them: params {}, calibrate defaults filled, no gate.
  const auto m = job_spec_json(parse_job_spec({{"upload", "u"}, {"method", "fp16"}}));
  EXPECT_EQ(m["params"], nlohmann::json::object());
  EXPECT_FALSE(m.contains("quality_gate"));
  EXPECT_EQ(job_spec_json(parse_job_spec({{"upload", "u"}, {"method", "saten"}, {"whole_model", true},
                                          {"calibrate", nlohmann::json::object()}}))["calibrate"]["sequences"], 64);
  EXPECT_THROW(stored_job_spec("\xff\xff\xff"), FormatError);
}

// A schema-3 database holds specs in format 1 (params and gate as JSON strings): migration 4 types
// them (params Struct, QualityGate) and adds the resolved_pb column; other fields are kept.
TEST(SqliteStore, Migration4TypesFormat1Specs) {
  Tmp t;
  const std::string db = t.path + "/v3.db";
  tensorslm::v1::JobSpec base;
  base.set_upload("u_1");
  base.set_method("saten");
  base.add_tensors("fc1");
  base.set_priority(5);
  tensorslm::v1::JobSpecFormat1 old;
  old.set_params_json(R"({"ranks": [4, 8], "sparsity": "2:4"})");
  old.set_quality_gate_json(R"({"max_kl": 0.5})");
  const std::string blob = base.SerializeAsString() + old.SerializeAsString();  // one message on the wire
  {
    sqlite3* h = nullptr;
    ASSERT_EQ(sqlite3_open(db.c_str(), &h), SQLITE_OK);
    const char* sql = R"sql(
CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_unix INTEGER NOT NULL);
INSERT INTO schema_migrations VALUES (1, 0), (2, 0), (3, 0);
CREATE TABLE jobs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, upload TEXT NOT NULL, method TEXT NOT NULL,
  priority INTEGER NOT NULL, state TEXT NOT NULL, progress REAL NOT NULL,
  error TEXT NOT NULL, result_json TEXT NOT NULL, timings_json TEXT NOT NULL, attempts INTEGER NOT NULL,
  created_unix INTEGER NOT NULL, started_unix INTEGER NOT NULL, finished_unix INTEGER NOT NULL,
  spec_pb BLOB NOT NULL DEFAULT x'');
)sql";
    ASSERT_EQ(sqlite3_exec(h, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(h);
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(h, "INSERT INTO jobs(id,upload,method,priority,state,progress,error,result_json,timings_json,attempts,"
                          "created_unix,started_unix,finished_unix,spec_pb) VALUES('j_1','u_1','saten',5,'queued',0,'','','',0,1,0,0,?)",
                       -1, &st, nullptr);
    sqlite3_bind_blob(st, 1, blob.data(), int(blob.size()), SQLITE_TRANSIENT);
    ASSERT_EQ(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    sqlite3_close(h);
  }
  SqliteStore s(db);
  EXPECT_EQ(s.schema_version(), SqliteStore::latest_schema_version());
  const auto j = s.get_job("j_1");
  ASSERT_TRUE(j);
  EXPECT_EQ(j->state, tensorslm::v1::QUEUED);
  EXPECT_TRUE(j->resolved_pb.empty());  // resolved by the worker: the job predates ResolvedJob
  const auto spec = stored_job_spec(j->spec_pb);
  EXPECT_EQ(struct_json(spec.params()), (nlohmann::json{{"ranks", {4, 8}}, {"sparsity", "2:4"}}));
  EXPECT_DOUBLE_EQ(spec.quality_gate().max_kl(), 0.5);
  EXPECT_FALSE(spec.quality_gate().has_max_rel_error());
  EXPECT_EQ(spec.tensors(0), "fc1");
  EXPECT_EQ(spec.priority(), 5);
  EXPECT_EQ(spec.GetReflection()->GetUnknownFields(spec).field_count(), 0);
}

// Issue 16: a kill -9 while an artifact was stored left blobs/xx/<sha>.tmp-* that start-up never
// removed (and counted as stored bytes).
TEST(BlobStore, StartUpRemovesStaleTempBlobs) {
  Tmp t;
  std::string sha;
  {
    BlobStore b(t.path);
    sha = b.put("hello");
  }
  const std::string dir = t.path + "/blobs/" + sha.substr(0, 2);
  std::ofstream(dir + "/" + sha + ".tmp-0123abcd") << "half-written";
  std::ofstream(t.path + "/tmp/upload-feed") << "interrupted upload";
  BlobStore b(t.path);
  EXPECT_FALSE(fs::exists(dir + "/" + sha + ".tmp-0123abcd"));
  EXPECT_FALSE(fs::exists(t.path + "/tmp/upload-feed"));
  EXPECT_TRUE(b.exists(sha));
  EXPECT_EQ(b.bytes_stored(), 5u);
}

// Issue 16: a kill -9 between a blob's (or an extracted model's) rename and its row's insert left
// files no row names, forever. The start-up sweep removes those, keeps every referenced one, and
// with a minimum age (processes sharing a store) leaves recent ones alone.
TEST(OrphanSweep, RemovesOnlyUnreferencedBlobsAndModelDirectories) {
  Tmp t;
  BlobStore b(t.path);
  SqliteStore store(t.path + "/meta.db");
  const std::string models = t.path + "/models";
  const std::string kept = b.put("an upload's bytes"), orphan = b.put("bytes whose row never came");
  const std::string artifact = b.put("an artifact's bytes");
  store.insert_upload({"u_0123456789abcdef", kept, "tar", "m", 17, "[]", 1});
  store.insert_artifact({artifact, 19, "j_1", "int8", 1});
  for (const std::string& sha : {kept, orphan}) {
    fs::create_directories(models + "/" + sha);
    std::ofstream(models + "/" + sha + "/config.json") << "{}";
  }
  fs::create_directories(models + "/not-a-sha");  // not ours: left alone
  const uint64_t before = b.bytes_stored();

  // A minimum age none of them has yet: nothing goes.
  SweepResult young = sweep_unreferenced(b, store, models, std::chrono::hours(1));
  EXPECT_EQ(young.blobs + young.model_dirs, 0);
  EXPECT_TRUE(b.exists(orphan));

  SweepResult r = sweep_unreferenced(b, store, models, std::chrono::seconds(0));
  EXPECT_EQ(r.blobs, 1);
  EXPECT_EQ(r.model_dirs, 1);
  EXPECT_EQ(r.bytes, 26u);
  EXPECT_FALSE(b.exists(orphan));
  EXPECT_FALSE(fs::exists(models + "/" + orphan));
  EXPECT_TRUE(b.exists(kept));
  EXPECT_TRUE(b.exists(artifact));
  EXPECT_TRUE(fs::exists(models + "/" + kept + "/config.json"));
  EXPECT_TRUE(fs::exists(models + "/not-a-sha"));
  EXPECT_EQ(b.bytes_stored(), before - 26u);
  // Idempotent.
  SweepResult again = sweep_unreferenced(b, store, models, std::chrono::seconds(0));
  EXPECT_EQ(again.blobs + again.model_dirs, 0);
}

TEST(BlobStore, SinkHashesAndLeavesNothingUnlessAdopted) {
  Tmp t;
  BlobStore b(t.path);
  std::string tmpfile;
  {
    BlobSink s(b.tmp_dir());
    s.write("hello", 5);
    tmpfile = s.temp_path();
    EXPECT_TRUE(fs::exists(tmpfile));
  }  // not adopted: removed
  EXPECT_FALSE(fs::exists(tmpfile));
  BlobSink s(b.tmp_dir());
  s.write("hello ", 6);
  s.write("world", 5);
  std::string sha = s.finish();
  EXPECT_EQ(sha, sha256_hex("hello world"));
  EXPECT_EQ(s.head(), "hello world");
  std::string p = b.adopt(s.temp_path(), sha);
  s.release();
  EXPECT_TRUE(b.exists(sha));
  EXPECT_EQ(b.bytes_stored(), 11u);
  EXPECT_EQ(b.put("hello world"), sha);  // content-addressed: idempotent
  EXPECT_EQ(b.bytes_stored(), 11u);
  EXPECT_THROW(b.path("../../etc/passwd"), Error);
  // Start-up empties tmp/ (an upload interrupted by a crash).
  std::ofstream(b.tmp_dir() + "/upload-stale") << "x";
  BlobStore again(t.path);
  EXPECT_TRUE(fs::is_empty(again.tmp_dir()));
  EXPECT_EQ(again.bytes_stored(), 11u);
}

TEST(Config, FileEnvFlagsAndRefusals) {
  Tmp t;
  std::string f = t.path + "/c.json";
  std::ofstream(f) << "// comment\n{\"listen\": \"127.0.0.1:9000\", /* inline */ \"workers\": 3, \"log_format\": \"json\"}\n";
  Config c = load_config_file(f);
  EXPECT_EQ(c.port, 9000);
  EXPECT_EQ(c.workers, 3);
  ::setenv("TENSORSLM_WORKERS", "5", 1);
  apply_env(c);
  ::unsetenv("TENSORSLM_WORKERS");
  EXPECT_EQ(c.workers, 5);
  c.validate();
  apply_listen(c, "0.0.0.0:8080");
  EXPECT_THROW(c.validate(), Error);  // public bind without tokens
  c.tokens.push_back({"ci", sha256_hex("t"), {"ci"}});
  EXPECT_THROW(c.validate(), Error);  // public bind without TLS
  c.insecure_http = true;
  EXPECT_NO_THROW(c.validate());
  c.tokens.back().scopes = {"root"};
  EXPECT_THROW(c.validate(), Error);
  EXPECT_THROW(apply_listen(c, "nonsense"), Error);
  std::ofstream(f) << "{\"workers\": \"many\"}";
  EXPECT_THROW(load_config_file(f), Error);
}

TEST(Config, WebDirFromFileThenEnvironment) {
  Tmp t;
  std::string f = t.path + "/c.json";
  ::unsetenv("TENSORSLM_WEB_DIR");
  EXPECT_EQ(Config{}.web_dir, "");  // "" = beside the executable (api/web_api.h)
  std::ofstream(f) << "{\"web_dir\": \"/srv/dash\" // comment\n}";
  Config c = load_config_file(f);
  EXPECT_EQ(c.web_dir, "/srv/dash");
  apply_env(c);  // unset: the file's value stays
  EXPECT_EQ(c.web_dir, "/srv/dash");
  ::setenv("TENSORSLM_WEB_DIR", "/opt/dash", 1);
  apply_env(c);
  EXPECT_EQ(c.web_dir, "/opt/dash");
  ::setenv("TENSORSLM_WEB_DIR", "", 1);  // empty = not set
  apply_env(c);
  EXPECT_EQ(c.web_dir, "/opt/dash");
  ::unsetenv("TENSORSLM_WEB_DIR");
  // A config without the key keeps the base's value; a non-string is an error naming the key.
  std::ofstream(f) << "{\"workers\": 2}";
  EXPECT_EQ(load_config_file(f, c).web_dir, "/opt/dash");
  for (const char* bad : {"{\"web_dir\": 7}", "{\"web_dir\": [\"a\"]}", "{\"web_dir\": null}"}) {
    std::ofstream(f) << bad;
    try {
      load_config_file(f);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("'web_dir'"), std::string::npos) << e.what();
    }
  }
  // The documented example config parses and leaves web_dir at its default.
  EXPECT_EQ(load_config_file(std::string(TSM_SOURCE_DIR) + "/configs/server.json").web_dir, "");
}

TEST(Auth, ScopesGrantWhatTheyShould) {
  Authenticator a({{"ci", sha256_hex("c"), {"ci"}}, {"dev", sha256_hex("d"), {"device"}}});
  auto ci = a.authenticate("Bearer c");
  auto dev = a.authenticate("Bearer d");
  ASSERT_TRUE(ci && dev);
  EXPECT_FALSE(a.authenticate("Bearer x"));
  EXPECT_FALSE(a.authenticate("Basic c"));
  EXPECT_TRUE(ci->allows(Perm::Upload));
  EXPECT_FALSE(ci->allows(Perm::PostReports));
  EXPECT_TRUE(dev->allows(Perm::Models));
  EXPECT_FALSE(dev->allows(Perm::Jobs));
  EXPECT_FALSE(dev->allows(Perm::Admin));
}

// Issue 16: a token hash written in upper case passed validation but never matched.
TEST(Auth, UpperCaseTokenHashesMatch) {
  std::string upper = sha256_hex("secret");
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  Authenticator a({{"ci", upper, {"ci"}}});
  EXPECT_TRUE(a.authenticate("Bearer secret"));
  Config c;
  c.tokens = {{"bad", std::string(63, 'a') + "g", {"ci"}}};
  EXPECT_THROW(c.validate(), Error);  // 64 characters, but not hex
}

TEST(JobSpec, ValidatesFieldByField) {
  auto field_of = [](const nlohmann::json& j) {
    try {
      parse_job_spec(j);
    } catch (const ParamError& e) {
      return e.field();
    }
    return std::string("ok");
  };
  EXPECT_EQ(field_of({{"upload", "u"}, {"method", "tt-token"}}), "ok");
  EXPECT_EQ(field_of({{"method", "tt-token"}}), "upload");
  EXPECT_EQ(field_of({{"upload", "u"}, {"method", "nope"}}), "method");
  EXPECT_EQ(field_of({{"upload", "u"}, {"method", "tt-token"}, {"priority", 1000}}), "priority");
  EXPECT_EQ(field_of({{"upload", "u"}, {"method", "tt-token"}, {"publish", {{"model", "a/b"}, {"tag", "v"}}}}), "publish.model");
  EXPECT_EQ(field_of({{"upload", "u"}, {"method", "tt-token"}, {"quality_gate", {{"max_x", 1}}}}), "quality_gate.max_x");
  EXPECT_EQ(field_of({{"upload", "u"}, {"method", "tt-token"}, {"tensors", {1, 2}}}), "tensors");
  EXPECT_EQ(field_of({{"upload", "u"}, {"entries", {{{"tensor", "a"}, {"method", "q4_0"}}}}}), "ok");  // no job method
  EXPECT_EQ(field_of({{"upload", "u"}, {"entries", {{{"tensor", "a"}, {"method", "nope"}}}}}), "entries[0].method");
  EXPECT_EQ(field_of({{"upload", "u"}, {"method", "fp16"}, {"entries", {{{"method", "q4_0"}}}}}), "entries[0].tensor");
  EXPECT_EQ(field_of({{"upload", "u"}, {"method", "fp16"}, {"entries", {{{"tensor", "a"}, {"method", "q4_0"}, {"x", 1}}}}}),
            "entries[0].x");
  EXPECT_EQ(field_of({{"upload", "u"}, {"method", "fp16"}, {"entries", nlohmann::json::array()}}), "entries");
  EXPECT_EQ(field_of({{"upload", "u"}, {"method", "saten"}, {"calibrate", nlohmann::json::object()}}), "calibrate");  // not whole-model
  EXPECT_EQ(field_of({{"upload", "u"}, {"method", "saten"}, {"whole_model", true}, {"calibrate", {{"sequences", 0}}}}),
            "calibrate.sequences");
  EXPECT_EQ(field_of({{"upload", "u"}, {"method", "saten"}, {"whole_model", true}, {"calibrate", {{"whitening", "pca"}}}}),
            "calibrate.whitening");
  const nlohmann::json whole = {{"upload", "u"}, {"method", "q4_0"}, {"whole_model", true}};
  auto with_eval = [&](const nlohmann::json& e) {
    nlohmann::json b = whole;
    b["evaluation"] = e;
    return field_of(b);
  };
  EXPECT_EQ(with_eval({{"tokens", 4096}, {"length", 256}}), "ok");
  EXPECT_EQ(with_eval({{"tokens", 0}}), "evaluation.tokens");
  EXPECT_EQ(with_eval({{"length", 1}}), "evaluation.length");
  EXPECT_EQ(with_eval({{"compare", "yes"}}), "evaluation.compare");
  EXPECT_EQ(with_eval({{"sequences", {{1}}}}), "evaluation.sequences[0]");
  EXPECT_EQ(with_eval({{"sequences", {{1, -2}}}}), "evaluation.sequences[0]");
  EXPECT_EQ(with_eval({{"sequences", nlohmann::json::array()}}), "evaluation.sequences");
  EXPECT_EQ(with_eval({{"bogus", 1}}), "evaluation.bogus");
  EXPECT_EQ(field_of({{"upload", "u"}, {"method", "q4_0"}, {"evaluation", nlohmann::json::object()}}), "evaluation");
  EXPECT_FALSE(is_safe_name(".."));
  EXPECT_FALSE(is_safe_name("a/b"));
  EXPECT_TRUE(is_safe_name("gpt2-emb_v1.2"));
}

TEST(ReportSummary, NearestRankPercentilesPerGroup) {
  std::vector<double> v = {5, 1, 4, 2, 3};
  EXPECT_EQ(percentile(v, 50), 3);
  EXPECT_EQ(percentile(v, 100), 5);
  EXPECT_EQ(percentile(v, 1), 1);
  std::vector<ReportRecord> rs;
  for (int i = 0; i < 4; ++i) {
    nlohmann::json r = {{"runs", {{{"variant", "compressed"}, {"p50_ms", 10.0 * (i + 1)}, {"tokens_per_s", 2.0 * i}}}}};
    rs.push_back({i, i < 2 ? "a" : "b", "m", "v1", "", 100 + i, r.dump()});
  }
  auto g = summarize_reports(rs);
  ASSERT_EQ(g.size(), 2u);
  EXPECT_EQ(g[0]["device"], "a");
  EXPECT_EQ(g[0]["latency_ms"]["p50"], 10.0);
  EXPECT_EQ(g[0]["latency_ms"]["p99"], 20.0);
  EXPECT_EQ(g[1]["tokens_per_s_mean"], 5.0);
}

TEST(MetricsRegistry, PrometheusTextIsCumulative) {
  MetricsRegistry m;
  m.observe_request("/v1/jobs/{id}", 200, 0.0005);
  m.observe_request("/v1/jobs/{id}", 200, 0.2);
  m.observe_request("/v1/jobs/{id}", 404, 20);
  std::string t = m.render();
  EXPECT_NE(t.find("tensorslm_http_requests_total{route=\"/v1/jobs/{id}\",status=\"200\"} 2"), std::string::npos);
  EXPECT_NE(t.find("tensorslm_http_request_duration_seconds_bucket{le=\"0.001\"} 1"), std::string::npos) << t;
  EXPECT_NE(t.find("tensorslm_http_request_duration_seconds_bucket{le=\"0.25\"} 2"), std::string::npos);
  EXPECT_NE(t.find("tensorslm_http_request_duration_seconds_bucket{le=\"+Inf\"} 3"), std::string::npos);
  EXPECT_NE(t.find("tensorslm_http_request_duration_seconds_count 3"), std::string::npos);
}

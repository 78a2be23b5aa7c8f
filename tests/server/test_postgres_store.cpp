// The MetadataStore contract, one parameterised suite run against both stores: SqliteStore on a
// temp file and PostgresStore on a throw-away PostgreSQL cluster (tests/support/pg_cluster.h; the
// PostgreSQL cases skip with a message when its binaries are absent, and fail under CI=true).
// Covers records round trips, pagination and filters, the queue (claim order, leases, takeover,
// the attempt limit, a lost lease that cannot publish, cancel, release), concurrent claims that never
// hand one job to two workers, and, on PostgreSQL, concurrent migrations, NOTIFY events and the
// redaction of passwords.
#include <gtest/gtest.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "common/error.h"
#include "config/config.h"
#include "spec/job_spec.h"
#include "store/postgres_store.h"
#include "store/sqlite_store.h"
#include "support/pg_cluster.h"

using namespace tsm::server;
namespace v1 = tensorslm::v1;

namespace {

/// The cluster shared by this executable's PostgreSQL cases (started at first use).
tsm::testing::PgCluster* cluster() {
  static std::unique_ptr<tsm::testing::PgCluster> c;
  if (!c && tsm::testing::PgCluster::skip_reason().empty()) c = std::make_unique<tsm::testing::PgCluster>();
  return c.get();
}

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/tsm-store-test-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

/// One fresh, empty store of the kind under test; open() gives another connection to the same one.
class StoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "postgres") {
      const std::string why = tsm::testing::PgCluster::skip_reason();
      if (!why.empty()) {
        if (tsm::testing::PgCluster::in_ci()) FAIL() << "CI=true: " << why;
        GTEST_SKIP() << why;
      }
      where_ = cluster()->uri(cluster()->create_database());
    } else {
      where_ = tmp_.path + "/t.db";
    }
    store_ = open();
  }
  std::unique_ptr<MetadataStore> open() const {
    if (GetParam() == "postgres") return std::make_unique<PostgresStore>(where_);
    return std::make_unique<SqliteStore>(where_);
  }
  JobRecord job(const std::string& id, int priority = 0) {
    JobRecord j;
    j.id = id;
    j.upload = "u_1";
    j.method = "tt-token";
    j.spec_pb = std::string("\x0a\x03u_1\x00\xff", 7);  // bytes, a NUL and a high byte included
    j.resolved_pb = std::string("\x12\x00\x01", 3);
    j.priority = priority;
    j.created_unix = 1000;
    store_->insert_job(j);
    return j;
  }
  TempDir tmp_;
  std::string where_;
  std::unique_ptr<MetadataStore> store_;
};

TEST_P(StoreTest, UploadsRoundTripAndCountBlobReferences) {
  UploadRecord u{"u_1", std::string(64, 'a'), "npy", "x.npy", 12345678901, "[{\"name\":\"a\"}]", 77};
  store_->insert_upload(u);
  auto g = store_->get_upload("u_1");
  ASSERT_TRUE(g);
  EXPECT_EQ(g->sha256, u.sha256);
  EXPECT_EQ(g->size_bytes, u.size_bytes);
  EXPECT_EQ(g->tensors_json, u.tensors_json);
  EXPECT_EQ(g->created_unix, 77);
  EXPECT_FALSE(store_->get_upload("u_2"));
  EXPECT_EQ(store_->blob_refs(u.sha256), 1);
  store_->insert_artifact({u.sha256, 5, "j_x", "tt-token", 1});
  EXPECT_EQ(store_->blob_refs(u.sha256), 2);
  EXPECT_TRUE(store_->delete_upload("u_1"));
  EXPECT_FALSE(store_->delete_upload("u_1"));
  EXPECT_EQ(store_->blob_refs(u.sha256), 1);
}

TEST_P(StoreTest, JobsRoundTripPaginateAndFilter) {
  for (int i = 0; i < 5; ++i) {
    JobRecord j = job("j_" + std::to_string(i));
    EXPECT_GT(j.seq, 0);
  }
  auto g = store_->get_job("j_2");
  ASSERT_TRUE(g);
  EXPECT_EQ(g->spec_pb, std::string("\x0a\x03u_1\x00\xff", 7));
  EXPECT_EQ(g->resolved_pb, std::string("\x12\x00\x01", 3));
  EXPECT_EQ(g->state, v1::QUEUED);
  EXPECT_EQ(g->locked_by, "");
  JobFilter f;
  f.limit = 2;
  auto p1 = store_->list_jobs(f);
  ASSERT_EQ(p1.size(), 2u);
  EXPECT_EQ(p1[0].id, "j_0");
  f.after_seq = p1.back().seq;
  auto p2 = store_->list_jobs(f);
  ASSERT_EQ(p2.size(), 2u);
  EXPECT_EQ(p2[0].id, "j_2");
  g->state = v1::SUCCEEDED;
  g->result_json = "{\"a\":1}";
  g->progress = 1;
  store_->update_job(*g);
  JobFilter fs;
  fs.state = v1::SUCCEEDED;
  auto done = store_->list_jobs(fs);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].result_json, "{\"a\":1}");
  EXPECT_EQ(store_->count_jobs_by_state()["queued"], 4);
  EXPECT_EQ(store_->queued_count(), 4);
  EXPECT_EQ(store_->queued_jobs().size(), 4u);
  JobFilter fm;
  fm.method = "other";
  EXPECT_TRUE(store_->list_jobs(fm).empty());
  EXPECT_THROW(job("j_0"), tsm::Error);  // ids are unique
}

TEST_P(StoreTest, ArtifactsModelsAndReports) {
  store_->insert_artifact({"aa", 10, "j_1", "tt-token", 5});
  store_->insert_artifact({"aa", 99, "j_2", "other", 6});  // idempotent: the first row stays
  auto a = store_->get_artifact("aa");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->size_bytes, 10u);
  EXPECT_EQ(a->job_id, "j_1");
  EXPECT_FALSE(store_->get_artifact("bb"));
  ModelVersion m1{"m", "v1", "aa", "j_1", 10, 0, 1}, m2{"m", "v2", "aa", "j_2", 10, 0, 2}, n1{"n", "v1", "aa", "j_3", 1, 0, 3};
  store_->insert_model_version(m1);
  store_->insert_model_version(m2);
  store_->insert_model_version(n1);
  EXPECT_LT(m1.seq, m2.seq);
  auto vs = store_->model_versions("m");
  ASSERT_EQ(vs.size(), 2u);
  EXPECT_EQ(vs[0].tag, "v2");  // newest first
  EXPECT_EQ(store_->list_models(), (std::vector<std::string>{"m", "n"}));
  for (int i = 0; i < 4; ++i) {
    ReportRecord r{0, i % 2 ? "pi" : "nano", "m", "v1", "aa", 100 + i, "{\"i\":" + std::to_string(i) + "}"};
    store_->insert_report(r);
    EXPECT_GT(r.id, 0);
  }
  ReportFilter rf;
  rf.device = "pi";
  auto reps = store_->list_reports(rf);
  ASSERT_EQ(reps.size(), 2u);
  EXPECT_EQ(reps[0].created_unix, 103);  // newest first
  rf = {};
  rf.since_unix = 101;
  rf.until_unix = 102;
  EXPECT_EQ(store_->list_reports(rf).size(), 2u);
}

TEST_P(StoreTest, ClaimsByPriorityThenAgeAndSetsTheLease) {
  job("j_a", 0);
  job("j_b", 5);
  job("j_c", 5);
  job("j_d", 1);
  std::vector<std::string> order;
  ClaimOutcome o;
  while (auto j = store_->claim_job("w1", 60, 3, o)) {
    EXPECT_EQ(j->state, v1::RUNNING);
    EXPECT_EQ(j->attempts, 1);
    EXPECT_EQ(j->locked_by, "w1");
    EXPECT_GT(j->lease_until, static_cast<double>(std::time(nullptr)));
    EXPECT_FALSE(o.takeover);
    order.push_back(j->id);
    auto row = store_->get_job(j->id);
    EXPECT_EQ(row->state, v1::RUNNING);
    EXPECT_EQ(row->locked_by, "w1");
  }
  EXPECT_EQ(order, (std::vector<std::string>{"j_b", "j_c", "j_d", "j_a"}));
  EXPECT_EQ(store_->queued_count(), 0);
}

TEST_P(StoreTest, ExpiredLeaseIsTakenOverThenFailsAtTheAttemptLimit) {
  job("j_1");
  ClaimOutcome o;
  auto a = store_->claim_job("w1", 0, 2, o);  // a lease that has already run out
  ASSERT_TRUE(a);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ClaimOutcome o2;
  auto b = store_->claim_job("w2", 0, 2, o2);
  ASSERT_TRUE(b);
  EXPECT_TRUE(o2.takeover);
  EXPECT_EQ(b->id, "j_1");
  EXPECT_EQ(b->attempts, 2);
  EXPECT_EQ(b->locked_by, "w2");
  // w1 lost the lease: its heartbeat says so and it cannot publish or release.
  EXPECT_EQ(store_->heartbeat("j_1", "w1", 1, 60, 0.5), LeaseState::Lost);
  JobRecord end = *a;
  end.state = v1::SUCCEEDED;
  end.result_json = "{}";
  ArtifactRecord art{"cc", 3, "j_1", "tt-token", 9};
  ModelVersion ver{"m", "v1", "cc", "j_1", 3, 0, 9};
  EXPECT_FALSE(store_->finish_job(end, &art, &ver));
  EXPECT_FALSE(store_->get_artifact("cc"));
  EXPECT_TRUE(store_->model_versions("m").empty());
  EXPECT_EQ(store_->get_job("j_1")->state, v1::RUNNING);
  EXPECT_FALSE(store_->release_job("j_1", "w1", 1));
  // w2's lease expires too, and 2 attempts is the limit: the next claim fails the job.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ClaimOutcome o3;
  EXPECT_FALSE(store_->claim_job("w3", 60, 2, o3));
  EXPECT_EQ(o3.exhausted, (std::vector<std::string>{"j_1"}));
  auto f = store_->get_job("j_1");
  EXPECT_EQ(f->state, v1::FAILED);
  EXPECT_EQ(f->attempts, 2);
  EXPECT_NE(f->error.find("attempt limit 2"), std::string::npos) << f->error;
}

TEST_P(StoreTest, TheLeaseHolderPublishesInOneTransaction) {
  job("j_1");
  ClaimOutcome o;
  auto a = store_->claim_job("w1", 60, 3, o);
  ASSERT_TRUE(a);
  EXPECT_EQ(store_->heartbeat("j_1", "w1", 1, 60, 0.25), LeaseState::Held);
  EXPECT_DOUBLE_EQ(store_->get_job("j_1")->progress, 0.25);
  EXPECT_EQ(store_->heartbeat("j_1", "w1", 2, 60, 0.5), LeaseState::Lost);  // another attempt's lease
  JobRecord end = *a;
  end.state = v1::SUCCEEDED;
  end.progress = 1;
  end.result_json = "{\"ok\":true}";
  end.timings_json = "{\"run_s\":1}";
  end.finished_unix = 2000;
  ArtifactRecord art{"cc", 3, "j_1", "tt-token", 9};
  ModelVersion ver{"m", "v1", "cc", "j_1", 3, 0, 9};
  ASSERT_TRUE(store_->finish_job(end, &art, &ver));
  EXPECT_GT(ver.seq, 0);
  auto f = store_->get_job("j_1");
  EXPECT_EQ(f->state, v1::SUCCEEDED);
  EXPECT_EQ(f->result_json, end.result_json);
  EXPECT_EQ(f->timings_json, end.timings_json);
  EXPECT_EQ(f->finished_unix, 2000);
  EXPECT_EQ(f->locked_by, "");
  EXPECT_TRUE(store_->get_artifact("cc"));
  ASSERT_EQ(store_->model_versions("m").size(), 1u);
  EXPECT_FALSE(store_->finish_job(end, &art, &ver));  // once: the job is no longer running
  EXPECT_EQ(store_->model_versions("m").size(), 1u);
}

TEST_P(StoreTest, CancelQueuedRequestCancelAndRelease) {
  job("j_q");
  job("j_r");
  EXPECT_FALSE(store_->request_cancel("j_q"));  // not running
  EXPECT_TRUE(store_->cancel_queued("j_q", "canceled while queued", 5));
  EXPECT_FALSE(store_->cancel_queued("j_q", "again", 6));
  auto q = store_->get_job("j_q");
  EXPECT_EQ(q->state, v1::CANCELED);
  EXPECT_EQ(q->error, "canceled while queued");
  ClaimOutcome o;
  auto r = store_->claim_job("w1", 60, 3, o);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->id, "j_r");  // a canceled job is never claimed
  EXPECT_FALSE(store_->cancel_queued("j_r", "x", 5));
  EXPECT_TRUE(store_->request_cancel("j_r"));
  EXPECT_EQ(store_->heartbeat("j_r", "w1", 1, 60, 0), LeaseState::CancelRequested);
  EXPECT_TRUE(store_->get_job("j_r")->cancel_requested);
  EXPECT_TRUE(store_->release_job("j_r", "w1", 1));  // shutdown checkpoint
  auto back = store_->get_job("j_r");
  EXPECT_EQ(back->state, v1::QUEUED);
  EXPECT_EQ(back->attempts, 1);
  EXPECT_EQ(back->locked_by, "");
  EXPECT_FALSE(store_->claim_job("w1", 60, 3, o) == std::nullopt);
}

TEST_P(StoreTest, RequeueRunningUndoesUnfinishedPublishes) {
  job("j_1");
  job("j_2");
  ClaimOutcome o;
  ASSERT_TRUE(store_->claim_job("w1", 60, 3, o));
  ModelVersion v{"m", "v1", "aa", "j_1", 1, 0, 1};
  store_->insert_model_version(v);
  EXPECT_EQ(store_->requeue_running(), 1);
  EXPECT_TRUE(store_->model_versions("m").empty());
  EXPECT_EQ(store_->queued_count(), 2);
}

// Many jobs, four workers on their own connections claiming at once: every job is claimed once.
TEST_P(StoreTest, ConcurrentClaimsNeverGiveOneJobToTwoWorkers) {
  const int kJobs = 200, kWorkers = 4;
  for (int i = 0; i < kJobs; ++i) job("j_" + std::to_string(i), i % 3);
  std::mutex mu;
  std::map<std::string, std::vector<std::string>> claimed;  // job -> workers that got it
  std::vector<std::thread> ts;
  std::atomic<int> errors{0};
  for (int w = 0; w < kWorkers; ++w)
    ts.emplace_back([&, w] {
      try {
        auto s = open();
        const std::string me = "w" + std::to_string(w);
        ClaimOutcome o;
        while (auto j = s->claim_job(me, 600, 3, o)) {
          {
            std::lock_guard lk(mu);
            claimed[j->id].push_back(me);
          }
          j->state = v1::SUCCEEDED;
          if (!s->finish_job(*j, nullptr, nullptr)) ++errors;
        }
      } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(errors.load(), 0);
  ASSERT_EQ(claimed.size(), size_t(kJobs));
  for (const auto& [id, ws] : claimed) EXPECT_EQ(ws.size(), 1u) << id << " claimed by " << ws.size() << " workers";
  EXPECT_EQ(store_->count_jobs_by_state()["succeeded"], kJobs);
}

INSTANTIATE_TEST_SUITE_P(BothStores, StoreTest, ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });

// --- PostgreSQL only ---

class PostgresOnly : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string why = tsm::testing::PgCluster::skip_reason();
    if (!why.empty()) {
      if (tsm::testing::PgCluster::in_ci()) FAIL() << "CI=true: " << why;
      GTEST_SKIP() << why;
    }
  }
};

TEST_F(PostgresOnly, ConcurrentStartsMigrateOnce) {
  for (int round = 0; round < 3; ++round) {
    const std::string db = cluster()->create_database("mig");
    std::vector<std::thread> ts;
    std::atomic<int> failures{0};
    for (int i = 0; i < 6; ++i)
      ts.emplace_back([&] {
        try {
          PostgresStore s(cluster()->uri(db));
          if (s.schema_version() != PostgresStore::latest_schema_version()) ++failures;
        } catch (const std::exception& e) {
          ++failures;
          ADD_FAILURE() << e.what();
        }
      });
    for (auto& t : ts) t.join();
    EXPECT_EQ(failures.load(), 0);
    auto rows = cluster()->exec(db, "SELECT COUNT(*) FROM schema_migrations");
    EXPECT_EQ(rows.at(0), std::to_string(PostgresStore::latest_schema_version()));
  }
}

TEST_F(PostgresOnly, RefusesANewerSchemaAndBadConnectionStrings) {
  const std::string db = cluster()->create_database("newer");
  { PostgresStore s(cluster()->uri(db)); }
  cluster()->exec(db, "INSERT INTO schema_migrations VALUES (999, 0)");
  try {
    PostgresStore s(cluster()->uri(db));
    ADD_FAILURE() << "opened a database of a newer schema";
  } catch (const tsm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("newer than this server"), std::string::npos) << e.what();
  }
  EXPECT_THROW(PostgresStore("postgresql://tsm@127.0.0.1:1/none?connect_timeout=2"), tsm::Error);
  EXPECT_THROW(PostgresStore("host=127.0.0.1 port='unterminated"), tsm::Error);
}

TEST_F(PostgresOnly, PasswordsAreNeverInTheDescription) {
  EXPECT_EQ(PostgresStore::redact("postgresql://alice:s3cret@db.example:5433/tsm?sslmode=require"),
            "postgresql://alice@db.example:5433/tsm");
  EXPECT_EQ(PostgresStore::redact("host=db port=5432 user=bob password=hunter2 dbname=x"), "postgresql://bob@db:5432/x");
  // A failed connection's error names the place, not the password.
  try {
    PostgresStore s("postgresql://tsm:topsecret@127.0.0.1:1/none?connect_timeout=2");
  } catch (const tsm::Error& e) {
    EXPECT_EQ(std::string(e.what()).find("topsecret"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(PostgresStore::is_conninfo("postgres://x/y"));
  EXPECT_TRUE(PostgresStore::is_conninfo("dbname=x"));
  EXPECT_FALSE(PostgresStore::is_conninfo("/var/lib/x.db"));
}

// Another process's submit, end and cancel arrive as events (LISTEN/NOTIFY).
TEST_F(PostgresOnly, NotifiesSubmitDoneAndCancel) {
  const std::string uri = cluster()->uri(cluster()->create_database("ev"));
  PostgresStore listener(uri), other(uri);
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::pair<StoreEvent, std::string>> got;
  listener.on_event([&](StoreEvent e, const std::string& id) {
    std::lock_guard lk(mu);
    got.emplace_back(e, id);
    cv.notify_all();
  });
  auto wait_for = [&](StoreEvent e, const std::string& id) {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, std::chrono::seconds(30), [&] {
      for (auto& g : got)
        if (g.first == e && g.second == id) return true;
      return false;
    });
  };
  // The LISTEN connection starts on its own thread: keep inserting until the first event arrives.
  bool first = false;
  for (int i = 0; i < 300 && !first; ++i) {
    JobRecord j;
    j.id = "j_warm" + std::to_string(i);
    j.upload = "u";
    j.method = "m";
    other.insert_job(j);
    std::unique_lock lk(mu);
    first = cv.wait_for(lk, std::chrono::milliseconds(100), [&] { return !got.empty(); });
  }
  ASSERT_TRUE(first);
  JobRecord j;
  j.id = "j_1";
  j.upload = "u";
  j.method = "m";
  other.insert_job(j);
  EXPECT_TRUE(wait_for(StoreEvent::Submitted, "j_1"));
  JobRecord k;
  k.id = "j_2";
  k.upload = "u";
  k.method = "m";
  other.insert_job(k);
  EXPECT_TRUE(other.cancel_queued("j_2", "x", 1));
  EXPECT_TRUE(wait_for(StoreEvent::Done, "j_2"));
  ClaimOutcome o;
  std::optional<JobRecord> c;
  while ((c = other.claim_job("w", 60, 3, o)) && c->id != "j_1") {
    c->state = v1::SUCCEEDED;
    other.finish_job(*c, nullptr, nullptr);
  }
  ASSERT_TRUE(c);
  EXPECT_TRUE(other.request_cancel("j_1"));
  EXPECT_TRUE(wait_for(StoreEvent::Cancel, "j_1"));
  c->state = v1::CANCELED;
  EXPECT_TRUE(other.finish_job(*c, nullptr, nullptr));
  EXPECT_TRUE(wait_for(StoreEvent::Done, "j_1"));
  listener.on_event(nullptr);
}

// The database goes away and comes back: calls fail meanwhile, then work again on the same store.
TEST_F(PostgresOnly, ReconnectsAfterTheDatabaseRestarts) {
  const std::string uri = cluster()->uri(cluster()->create_database("re"));
  PostgresStore s(uri);
  JobRecord j;
  j.id = "j_1";
  j.upload = "u";
  j.method = "m";
  s.insert_job(j);
  EXPECT_TRUE(s.reachable());
  cluster()->stop();
  EXPECT_FALSE(s.reachable());
  EXPECT_THROW(s.get_job("j_1"), tsm::Error);
  cluster()->start();
  EXPECT_TRUE(s.reachable());
  ASSERT_TRUE(s.get_job("j_1"));
  EXPECT_EQ(s.get_job("j_1")->state, v1::QUEUED);
}

// The statement pool: 16 threads at once share at most `connections` connections (plus the
// LISTEN one, which has no application_name), and every call gets its own answer.
TEST_F(PostgresOnly, ConcurrentCallsShareABoundedPoolOfConnections) {
  const std::string db = cluster()->create_database("pool");
  PostgresStore s(cluster()->uri(db), 3);
  for (int i = 0; i < 20; ++i) {
    JobRecord j;
    j.id = "j_" + std::to_string(i);
    j.upload = "u";
    j.method = "m";
    s.insert_job(j);
  }
  std::atomic<int> wrong{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 16; ++t)
    ts.emplace_back([&, t] {
      for (int k = 0; k < 50; ++k) {
        const std::string id = "j_" + std::to_string((t + k) % 20);
        const auto j = s.get_job(id);
        if (!j || j->id != id) ++wrong;
      }
    });
  for (auto& t : ts) t.join();
  // The pool keeps what it opened until the store goes, so the server's count now is its peak.
  const int peak = std::stoi(cluster()->exec(db, "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database()"
                                                 " AND application_name = 'tensorslm-server'").at(0));
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GE(peak, 2) << "16 threads at once were served one connection at a time";
  EXPECT_LE(peak, 3) << "the pool opened more connections than it may";
}

// The scale-out keys: file, environment, and the refusals of validate().
TEST(ScaleOutConfig, KeysEnvironmentAndRefusals) {
  TempDir t;
  const std::string f = t.path + "/c.json";
  std::ofstream(f) << "{\"store\": \"postgresql://tsm@db/tsm\", \"role\": \"worker\", \"blob_dir\": \"/mnt/b\","
                      " \"lease_s\": 5, \"max_attempts\": 2, \"poll_s\": 0.5, \"worker_id\": \"w-1\"}";
  Config c = load_config_file(f);
  EXPECT_TRUE(c.store_is_postgres());
  EXPECT_EQ(c.role, "worker");
  EXPECT_EQ(c.effective_blob_dir(), "/mnt/b");
  EXPECT_DOUBLE_EQ(c.lease_s, 5);
  EXPECT_EQ(c.max_attempts, 2);
  EXPECT_EQ(c.worker_id, "w-1");
  EXPECT_NO_THROW(c.validate());
  ::setenv("TENSORSLM_ROLE", "api", 1);
  ::setenv("TENSORSLM_LEASE_S", "12.5", 1);
  apply_env(c);
  EXPECT_EQ(c.role, "api");
  EXPECT_DOUBLE_EQ(c.lease_s, 12.5);
  ::setenv("TENSORSLM_LEASE_S", "soon", 1);
  EXPECT_THROW(apply_env(c), tsm::Error);
  ::unsetenv("TENSORSLM_LEASE_S");
  ::unsetenv("TENSORSLM_ROLE");
  Config d;
  EXPECT_EQ(d.effective_blob_dir(), d.data_dir);
  d.role = "worker";  // a worker on SQLite would share nothing
  EXPECT_THROW(d.validate(), tsm::Error);
  d.role = "boss";
  EXPECT_THROW(d.validate(), tsm::Error);
  d.role = "all";
  d.store = "mysql://x";
  EXPECT_THROW(d.validate(), tsm::Error);
  d.store = "sqlite:/tmp/x.db";
  EXPECT_NO_THROW(d.validate());
  d.lease_s = 0;
  EXPECT_THROW(d.validate(), tsm::Error);
  d.lease_s = 30;
  d.max_attempts = 0;
  EXPECT_THROW(d.validate(), tsm::Error);
}

}  // namespace

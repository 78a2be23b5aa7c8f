// Planner jobs through the service (POST /v1/jobs with "plan" in place of a method) against a real
// tensorslm-server child process, on the trained fixture gpt2-man uploaded as an HF model tar: a
// ratio target succeeds with the frontier, the per-tensor choices and the re-runnable spec in its
// result and an artifact within the budget, and shows its phase while running; bad plans are 422s
// naming the field at POST (nothing queued); a max_kl out of reach fails with the planner's message
// and still holds the frontier; a running plan job (a byte target) cancels. Small candidate lists and sets keep each
// plan to seconds.
#include <functional>
#include <set>

#include "server_harness.h"

using namespace tsm;
using namespace tsm::test;

namespace {

const std::map<std::string, std::string> kJson = {{"Content-Type", "application/json"}};

std::string upload_model(uint16_t port, const std::string& dir) {
  auto r = POST(port, "/v1/uploads?name=gpt2-man", fixture_tar(dir, "gpt2-man"), {{"Content-Type", "application/x-tar"}});
  EXPECT_EQ(r.status, 201) << r.body;
  return r.js().value("id", "");
}

/// A plan job on `upload`: small sets (sensitivity 2 sequences, 256 held-out tokens) and no GPTQ.
json plan_job(const std::string& upload, const json& plan) {
  json p = {{"methods", "fp16,q8_0,q4_k,q4_0"}, {"calibrate", false}, {"sensitivity_sequences", 2}};
  for (auto it = plan.begin(); it != plan.end(); ++it) p[it.key()] = it.value();
  return {{"upload", upload}, {"plan", p}, {"evaluation", {{"tokens", 256}, {"length", 65}}}};
}

}  // namespace

TEST(ServerPlan, RatioTargetSucceedsWithTheFrontierAndShowsItsPhase) {
  TempDir tmp;
  ServerProcess srv(tmp.path + "/data");
  const std::string up = upload_model(srv.port(), tmp.path);
  ASSERT_FALSE(up.empty());
  json body = plan_job(up, {{"target_ratio", 4}});
  body["publish"] = {{"model", "gpt2-man-planned"}, {"tag", "v1"}};
  auto r = POST(srv.port(), "/v1/jobs", body.dump(), kJson);
  ASSERT_EQ(r.status, 202) << r.body;
  const std::string id = r.js()["id"];
  EXPECT_EQ(r.js()["method"], "plan");

  // While it runs, GET shows the phase beside the progress.
  std::set<std::string> phases;
  double last_progress = 0;
  bool progress_monotone = true;
  const json job = poll_job(
      srv.port(), id,
      [&](const json& j) {
        if (j["state"] == "running" && j.contains("phase")) {
          phases.insert(j["phase"].get<std::string>());
          const double p = j["progress"].get<double>();
          progress_monotone = progress_monotone && p >= last_progress - 1e-12;
          last_progress = p;
        }
        return j["state"] != "queued" && j["state"] != "running";
      },
      300);
  ASSERT_EQ(job["state"], "succeeded") << job.dump(1);
  EXPECT_TRUE(phases.count("candidates")) << "phases seen: " << json(phases).dump();
  for (const auto& p : phases) EXPECT_TRUE(p == "calibrate" || p == "candidates" || p == "repair" || p == "build") << p;
  EXPECT_TRUE(progress_monotone);
  EXPECT_FALSE(job.contains("phase"));  // only while running
  EXPECT_DOUBLE_EQ(job["progress"].get<double>(), 1.0);

  // The spec as stored: a whole-model plan job, its target as sent.
  EXPECT_EQ(job["spec"]["whole_model"], true);
  EXPECT_EQ(job["spec"]["plan"]["target_ratio"], 4.0);
  EXPECT_EQ(job["spec"]["plan"]["methods"], "fp16,q8_0,q4_k,q4_0");

  // The frontier a dashboard plots: several points, bytes ascending, each with its KL estimate.
  const json& plan = job["result"]["plan"];
  ASSERT_TRUE(plan.is_object()) << job["result"].dump();
  EXPECT_EQ(plan["target_met"], true);
  ASSERT_GE(plan["frontier"].size(), 3u) << plan["frontier"].dump();
  int measured = 0;
  for (size_t i = 0; i < plan["frontier"].size(); ++i) {
    const json& f = plan["frontier"][i];
    EXPECT_GT(f["ratio_f32"].get<double>(), 0.0);
    EXPECT_GE(f["kl_estimate"].get<double>(), 0.0);
    measured += f.contains("kl_measured");
    if (i > 0) {
      EXPECT_LT(plan["frontier"][i - 1]["bytes"].get<uint64_t>(), f["bytes"].get<uint64_t>()) << i;
    }
  }
  EXPECT_GE(measured, 2);
  EXPECT_EQ(plan["uniform"].size(), 4u);
  EXPECT_FALSE(plan["tensors"].empty());
  ASSERT_TRUE(plan["spec"]["entries"].is_array());
  EXPECT_FALSE(plan["spec"]["entries"].empty());

  // The artifact honours the target: whole-model stored bytes <= dense f32 bytes / 4.
  const json& total = job["result"]["total"];
  const uint64_t dense = plan["dense_f32_bytes"].get<uint64_t>();
  EXPECT_EQ(total["dense_f32_bytes"].get<uint64_t>(), dense);
  EXPECT_LE(total["stored_bytes"].get<uint64_t>(), dense / 4);
  EXPECT_EQ(total["stored_bytes"], plan["bytes"]);
  EXPECT_GT(job["result"]["quality"]["tokens"].get<int>(), 0);
  EXPECT_NEAR(job["result"]["quality"]["kl_mean"].get<double>(), plan["kl_verified"].get<double>(), 1e-12);
  auto art = GET(srv.port(), job["result"]["artifact"]["url"].get<std::string>());
  EXPECT_EQ(art.status, 200);
  EXPECT_EQ(job["result"]["published"]["model"], "gpt2-man-planned");

  // Seconds per phase in the timings.
  const json& ph = job["timings"]["phases"];
  for (const char* k : {"calibrate_s", "candidates_s", "repair_s", "build_s"}) {
    ASSERT_TRUE(ph.contains(k)) << job["timings"].dump();
    EXPECT_GE(ph[k].get<double>(), 0.0);
  }
  EXPECT_GT(ph["candidates_s"].get<double>(), 0.0);

  // Listed by method "plan".
  auto list = GET(srv.port(), "/v1/jobs?method=plan").js();
  ASSERT_EQ(list["jobs"].size(), 1u);
  EXPECT_EQ(list["jobs"][0]["id"], id);
}

TEST(ServerPlan, BadPlansAreRefusedNamingTheField) {
  TempDir tmp;
  ServerProcess srv(tmp.path + "/data");
  const std::string up = upload_model(srv.port(), tmp.path);
  ASSERT_FALSE(up.empty());
  auto npy = POST(srv.port(), "/v1/uploads?name=emb", npy_of(test_matrix(64, 32)));
  ASSERT_EQ(npy.status, 201) << npy.body;

  const json base = plan_job(up, {{"target_ratio", 4}});
  auto with = [&](const std::function<void(json&)>& edit) {
    json b = base;
    edit(b);
    return b;
  };
  const std::vector<std::pair<json, std::string>> cases = {
      {with([](json& b) { b["plan"]["max_kl"] = 0.1; }), "plan"},  // two targets
      {with([](json& b) { b["plan"].erase("target_ratio"); }), "plan"},  // none
      {with([](json& b) { b["plan"]["target_ratio"] = 0.5; }), "plan.target_ratio"},
      {with([](json& b) { b["plan"]["target_ratio"] = "4"; }), "plan.target_ratio"},
      {with([](json& b) { b["plan"].erase("target_ratio"); b["plan"]["target_bytes"] = 0; }), "plan.target_bytes"},
      {with([](json& b) { b["plan"].erase("target_ratio"); b["plan"]["target_bytes"] = 1000; }), "plan.target_bytes"},  // the kept tensors fill it
      {with([](json& b) { b["plan"].erase("target_ratio"); b["plan"]["max_kl"] = -1; }), "plan.max_kl"},
      {with([](json& b) { b["plan"]["methods"] = "fp16,no_such_method"; }), "plan.methods"},
      {with([](json& b) { b["plan"]["methods"] = "q4_0{\"no_such_param\":1}"; }), "plan.methods"},  // fits no tensor
      {with([](json& b) { b["plan"]["methods"] = 3; }), "plan.methods"},
      {with([](json& b) { b["plan"]["calibrate"] = "yes"; }), "plan.calibrate"},
      {with([](json& b) { b["plan"]["sensitivity_sequences"] = 0; }), "plan.sensitivity_sequences"},
      {with([](json& b) { b["plan"]["frontier_points"] = 3; }), "plan.frontier_points"},
      {with([](json& b) { b["plan"] = "ratio 4"; }), "plan"},
      {with([](json& b) { b["method"] = "q4_0"; }), "method"},
      {with([](json& b) { b["params"] = json::object(); }), "params"},
      {with([](json& b) { b["entries"] = json::array({json{{"tensor", ".*"}, {"method", "q8_0"}}}); }), "entries"},
      {with([](json& b) { b["whole_model"] = false; }), "whole_model"},
      {with([](json& b) { b["calibrate"] = {{"adam_steps", 5}}; }), "calibrate.adam_steps"},
      {with([](json& b) { b["token_weights"] = false; }), "token_weights"},
      {with([](json& b) { b["tensors"] = "no_such_tensor"; }), "tensors"},
      {with([](json& b) { b["evaluation"]["sequences"] = json::array({json::array({1, 999999})}); }), "evaluation.sequences"},  // id outside the vocabulary
      {with([&](json& b) { b["upload"] = npy.js()["id"]; }), "plan"},  // not a model tar
  };
  for (const auto& [body, field] : cases) {
    auto r = POST(srv.port(), "/v1/jobs", body.dump(), kJson);
    EXPECT_TRUE(r.status == 400 || r.status == 422) << r.status << " " << body.dump() << "\n" << r.body;
    EXPECT_EQ(r.header("content-type"), "application/problem+json") << r.body;
    ASSERT_TRUE(r.body.front() == '{') << r.body;
    EXPECT_EQ(r.js().value("field", ""), field) << body.dump() << "\n" << r.body;
  }
  EXPECT_EQ(GET(srv.port(), "/v1/jobs").js()["jobs"].size(), 0u);  // nothing was queued

  // The contract documents the plan and its report.
  auto doc = GET(srv.port(), "/v1/openapi.json").js();
  const json& schemas = doc["components"]["schemas"];
  EXPECT_TRUE(schemas["JobRequest"]["properties"]["plan"]["properties"].contains("target_ratio"));
  EXPECT_TRUE(schemas["PlanReport"]["properties"]["frontier"]["items"]["properties"].contains("kl_measured"));
  EXPECT_EQ(schemas["Job"]["properties"]["result"]["properties"]["plan"]["$ref"], "#/components/schemas/PlanReport");
}

TEST(ServerPlan, MaxKlOutOfReachFailsAndKeepsTheFrontier) {
  TempDir tmp;
  ServerProcess srv(tmp.path + "/data");
  const std::string up = upload_model(srv.port(), tmp.path);
  ASSERT_FALSE(up.empty());
  json body = plan_job(up, {{"max_kl", 1e-9}, {"methods", "q8_0,q4_0"}});
  auto r = POST(srv.port(), "/v1/jobs?wait=300", body.dump(), kJson);
  ASSERT_EQ(r.status, 200) << r.body;
  const json job = r.js();
  ASSERT_EQ(job["state"], "failed") << r.body;
  EXPECT_NE(job["error"].get<std::string>().find("out of reach"), std::string::npos) << job["error"];
  const json& plan = job["result"]["plan"];
  EXPECT_EQ(plan["target_met"], false);
  EXPECT_EQ(plan["message"], job["error"]);
  EXPECT_FALSE(plan["frontier"].empty());
  EXPECT_EQ(plan["uniform"].size(), 2u);
  EXPECT_GT(plan["bytes"].get<uint64_t>(), 0u);  // the closest plan
  EXPECT_FALSE(job["result"].contains("artifact"));
  EXPECT_TRUE(job["timings"]["phases"].contains("repair_s")) << job["timings"].dump();
}

TEST(ServerPlan, RunningPlanJobCancels) {
  TempDir tmp;
  ServerProcess srv(tmp.path + "/data");
  const std::string up = upload_model(srv.port(), tmp.path);
  ASSERT_FALSE(up.empty());
  auto r = POST(srv.port(), "/v1/jobs", plan_job(up, {{"target_bytes", 1500000}}).dump(), kJson);
  ASSERT_EQ(r.status, 202) << r.body;
  const std::string id = r.js()["id"];
  EXPECT_EQ(r.js()["spec"]["plan"]["target_bytes"], 1500000);  // a number, as sent (uint64 is a string in proto3 JSON)
  const json running = poll_job(
      srv.port(), id,
      [](const json& j) { return j.value("phase", "") == "candidates" || (j["state"] != "queued" && j["state"] != "running"); }, 120);
  ASSERT_EQ(running["state"], "running") << running.dump(1);
  auto d = http_request(srv.port(), http::verb::delete_, "/v1/jobs/" + id);
  EXPECT_EQ(d.status, 202) << d.body;
  auto end = GET(srv.port(), "/v1/jobs/" + id + "?wait=60").js();
  EXPECT_EQ(end["state"], "canceled") << end.dump(1);
  EXPECT_EQ(end["error"], "canceled by request");
  EXPECT_FALSE(end.contains("result"));
}

// Issue 16: a device token speaks only for the devices its config entry lists (a report for another
// device id is a 403), and /metrics needs the metrics (or admin) scope unless metrics_public.
// Unit tests of Principal / Config, then real servers on loopback with tokens in a config file.
#include "common/error.h"
#include "common/sha256.h"
#include "config/auth.h"
#include "config/config.h"
#include "server_harness.h"

using namespace tsm;
using namespace tsm::test;
using tsm::server::Authenticator;
using tsm::server::Perm;
using tsm::server::TokenConfig;

TEST(DeviceBinding, TokensSpeakForTheirDevicesOnly) {
  Authenticator a({{"kitchen", sha256_hex("k"), {"device"}, {"pi-kitchen", "lab-*"}},
                   {"fleet", sha256_hex("f"), {"device"}, {"*"}},
                   {"legacy", sha256_hex("l"), {"device"}, {}},
                   {"ci", sha256_hex("c"), {"ci"}, {}},
                   {"root", sha256_hex("r"), {"admin"}, {}}});
  auto k = a.authenticate("Bearer k"), f = a.authenticate("Bearer f"), l = a.authenticate("Bearer l"),
       c = a.authenticate("Bearer c"), r = a.authenticate("Bearer r");
  ASSERT_TRUE(k && f && l && c && r);
  EXPECT_TRUE(k->may_report_for("pi-kitchen"));
  EXPECT_FALSE(k->may_report_for("pi-kitchen2"));  // exact ids are exact
  EXPECT_FALSE(k->may_report_for("pi-garage"));
  EXPECT_TRUE(k->may_report_for("lab-3"));
  EXPECT_FALSE(k->may_report_for("lab"));           // a prefix entry needs the prefix
  EXPECT_TRUE(f->may_report_for("anything"));
  EXPECT_FALSE(l->may_report_for("pi-kitchen"));    // no list: no device
  EXPECT_TRUE(l->allows(Perm::Models));             // ... but it still reads models
  EXPECT_FALSE(c->may_report_for("pi-kitchen"));
  EXPECT_TRUE(r->may_report_for("pi-kitchen"));
  EXPECT_FALSE(k->allows(Perm::Metrics));
  EXPECT_FALSE(c->allows(Perm::Metrics));
  EXPECT_TRUE(r->allows(Perm::Metrics));
}

TEST(DeviceBinding, ConfigRefusesMalformedDeviceLists) {
  server::Config c;
  c.tokens = {{"pi", sha256_hex("p"), {"device"}, {"pi-kitchen", "lab-*", "*"}}};
  EXPECT_NO_THROW(c.validate());
  c.tokens = {{"pi", sha256_hex("p"), {"device"}, {"../etc"}}};
  EXPECT_THROW(c.validate(), Error);
  c.tokens = {{"pi", sha256_hex("p"), {"device"}, {""}}};
  EXPECT_THROW(c.validate(), Error);
  c.tokens = {{"pi", sha256_hex("p"), {"device"}, {"a*b"}}};
  EXPECT_THROW(c.validate(), Error);
  c.tokens = {{"ci", sha256_hex("c"), {"ci"}, {"pi-kitchen"}}};  // devices only mean something on device tokens
  EXPECT_THROW(c.validate(), Error);
  c.tokens = {{"m", sha256_hex("m"), {"metrics"}, {}}};
  EXPECT_NO_THROW(c.validate());
  TempDir tmp;
  std::string f = tmp.path + "/c.json";
  std::ofstream(f) << "{\"tokens\": [{\"name\": \"pi\", \"sha256\": \"" << sha256_hex("p")
                   << "\", \"scopes\": [\"device\"], \"devices\": [\"pi-1\", \"pi-2\"]}]}";
  auto loaded = server::load_config_file(f);
  ASSERT_EQ(loaded.tokens.size(), 1u);
  EXPECT_EQ(loaded.tokens[0].devices, (std::vector<std::string>{"pi-1", "pi-2"}));
  std::ofstream(f) << "{\"tokens\": [{\"name\": \"pi\", \"sha256\": \"" << sha256_hex("p")
                   << "\", \"scopes\": [\"device\"], \"devices\": \"pi-1\"}]}";
  EXPECT_THROW(server::load_config_file(f), Error);
}

namespace {

std::string token_line(const std::string& name, const std::string& secret, const std::string& scopes,
                       const std::string& devices = "") {
  return "{\"name\": \"" + name + "\", \"sha256\": \"" + sha256_hex(secret) + "\", \"scopes\": " + scopes +
         (devices.empty() ? "" : ", \"devices\": " + devices) + "}";
}

std::map<std::string, std::string> bearer(const std::string& secret) { return {{"Authorization", "Bearer " + secret}}; }

class AuthServer : public ::testing::Test {
 protected:
  /// A server whose config holds the tokens below plus `extra` top-level keys ("\"k\": v, ").
  void start(const std::string& extra = "", std::vector<std::string> args = {}) {
    const std::string cfg = tmp_.path + "/server.json";
    write_bytes(cfg, "// test config\n{" + extra + "\"tokens\": [\n  " +
                         token_line("kitchen", "kitchen-secret", "[\"device\"]", "[\"pi-kitchen\", \"lab-*\"]") + ",\n  " +
                         token_line("legacy", "legacy-secret", "[\"device\"]") + ",\n  " +
                         token_line("ci", "ci-secret", "[\"ci\"]") + ",\n  " +
                         token_line("root", "root-secret", "[\"admin\"]") + ",\n  " +
                         token_line("prometheus", "scrape-secret", "[\"metrics\"]") + "]}\n");
    args.insert(args.begin(), {"--config", cfg});
    srv_ = std::make_unique<ServerProcess>(tmp_.path + "/data" + std::to_string(++starts_), std::vector<std::pair<std::string, std::string>>{},
                                           args);
  }
  HttpResult report(const std::string& device, const std::string& secret) {
    return POST(srv_->port(), "/v1/devices/" + device + "/reports", "{\"model\": \"m\"}", bearer(secret));
  }
  TempDir tmp_;
  std::unique_ptr<ServerProcess> srv_;
  int starts_ = 0;
};

}  // namespace

// Issue 16, item 7: a device-scope token could post reports as any device id.
TEST_F(AuthServer, ReportsOnlyForTheTokensDevices) {
  start();
  EXPECT_EQ(report("pi-kitchen", "kitchen-secret").status, 201);
  EXPECT_EQ(report("lab-7", "kitchen-secret").status, 201);
  auto r = report("pi-garage", "kitchen-secret");
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_EQ(r.header("content-type"), "application/problem+json");
  EXPECT_NE(r.js()["detail"].get<std::string>().find("may not post reports for device 'pi-garage'"), std::string::npos) << r.body;
  EXPECT_EQ(r.js()["device"], "pi-garage");
  r = report("pi-kitchen", "legacy-secret");  // a device token without "devices" speaks for no device
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_NE(r.js()["detail"].get<std::string>().find("its devices: none"), std::string::npos) << r.body;
  EXPECT_EQ(GET(srv_->port(), "/v1/models", bearer("legacy-secret")).status, 200);  // reading still works
  EXPECT_NE(srv_->log().find("token 'legacy' has the device scope but no \"devices\""), std::string::npos) << srv_->log();
  EXPECT_EQ(report("pi-garage", "root-secret").status, 201);  // admin speaks for any device
  EXPECT_EQ(report("pi-kitchen", "ci-secret").status, 403);   // ci posts no reports (scope)
  // Nothing the refused posts sent was stored: exactly the three accepted reports.
  auto list = GET(srv_->port(), "/v1/reports", bearer("ci-secret"));
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(list.js()["reports"].size(), 3u) << list.body;
  // The body cannot claim another device either (checked after the token's binding).
  r = POST(srv_->port(), "/v1/devices/pi-kitchen/reports", "{\"device\": {\"device_id\": \"pi-garage\"}, \"model\": \"m\"}",
           bearer("kitchen-secret"));
  EXPECT_EQ(r.status, 422) << r.body;
}

// Issue 16, item 7: /metrics needed no token.
TEST_F(AuthServer, MetricsNeedTheMetricsScopeUnlessPublic) {
  start();
  auto r = GET(srv_->port(), "/metrics");
  EXPECT_EQ(r.status, 401) << r.body;
  EXPECT_EQ(r.header("content-type"), "application/problem+json");
  EXPECT_EQ(GET(srv_->port(), "/metrics", bearer("ci-secret")).status, 403);
  EXPECT_EQ(GET(srv_->port(), "/metrics", bearer("kitchen-secret")).status, 403);
  r = GET(srv_->port(), "/metrics", bearer("scrape-secret"));
  ASSERT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("tensorslm_http_requests_total"), std::string::npos);
  EXPECT_EQ(GET(srv_->port(), "/metrics", bearer("root-secret")).status, 200);
  EXPECT_EQ(GET(srv_->port(), "/v1/models", bearer("scrape-secret")).status, 403);  // the scope grants /metrics only
  EXPECT_EQ(GET(srv_->port(), "/healthz").status, 200);                            // health stays public

  start("\"metrics_public\": true, ");
  EXPECT_EQ(GET(srv_->port(), "/metrics").status, 200);
  EXPECT_EQ(GET(srv_->port(), "/v1/models").status, 401);  // only /metrics became public
  start("", {"--metrics-public"});
  EXPECT_EQ(GET(srv_->port(), "/metrics").status, 200);
  start("\"metrics_public\": true, ", {"--metrics-public=false"});  // the flag wins over the file
  EXPECT_EQ(GET(srv_->port(), "/metrics").status, 401);
}

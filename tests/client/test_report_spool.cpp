// ReportSpool: delivery in order, bound with oldest dropped and counted, persistence across
// reopening, partial delivery when the sender fails, leftover temp files ignored.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/atomic_file.h"
#include "lib/report_spool.h"

using tsm::client::ReportSpool;
namespace fs = std::filesystem;

namespace {
fs::path fresh(const std::string& n) {
  auto d = fs::temp_directory_path() / ("tsm_spool_" + n + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  return d;
}
}  // namespace

TEST(ReportSpool, DeliversInOrderAndRemovesDelivered) {
  auto d = fresh("order");
  ReportSpool s(d.string(), 100);
  for (int i = 0; i < 12; ++i) s.push("r" + std::to_string(i));  // 12 > 9: numeric, not text order
  std::vector<std::string> got;
  EXPECT_EQ(s.deliver([&](const std::string& b) {
              got.push_back(b);
              return true;
            }),
            12u);
  ASSERT_EQ(got.size(), 12u);
  for (int i = 0; i < 12; ++i) EXPECT_EQ(got[i], "r" + std::to_string(i));
  EXPECT_EQ(s.size(), 0u);
  EXPECT_EQ(s.dropped(), 0u);
  fs::remove_all(d);
}

TEST(ReportSpool, StopsAtFirstFailureAndResumesInOrder) {
  auto d = fresh("fail");
  ReportSpool s(d.string(), 100);
  for (int i = 0; i < 5; ++i) s.push("r" + std::to_string(i));
  int calls = 0;
  EXPECT_EQ(s.deliver([&](const std::string&) { return ++calls <= 2; }), 2u);  // third send fails
  EXPECT_EQ(s.size(), 3u);
  s.push("r5");
  std::vector<std::string> got;
  s.deliver([&](const std::string& b) {
    got.push_back(b);
    return true;
  });
  EXPECT_EQ(got, (std::vector<std::string>{"r2", "r3", "r4", "r5"}));
  fs::remove_all(d);
}

TEST(ReportSpool, BoundedDropsOldestWithCountPersisted) {
  auto d = fresh("bound");
  {
    ReportSpool s(d.string(), 3);
    for (int i = 0; i < 7; ++i) s.push("r" + std::to_string(i));
    EXPECT_EQ(s.size(), 3u);
    EXPECT_EQ(s.dropped(), 4u);
  }
  ReportSpool again(d.string(), 3);  // reopened: count and contents survive
  EXPECT_EQ(again.dropped(), 4u);
  std::vector<std::string> got;
  again.deliver([&](const std::string& b) {
    got.push_back(b);
    return true;
  });
  EXPECT_EQ(got, (std::vector<std::string>{"r4", "r5", "r6"}));
  // Sequence numbers keep growing after a drain? A drained spool restarts at 1; order still holds.
  again.push("x");
  EXPECT_EQ(again.pending().size(), 1u);
  fs::remove_all(d);
}

TEST(ReportSpool, IgnoresTempFilesAndForeignNames) {
  auto d = fresh("junk");
  ReportSpool s(d.string(), 10);
  s.push("a");
  tsm::write_file_atomic((d / "README").string(), "not a report");
  { std::ofstream((d / "00000000000000000002.report.tmp-deadbeef").string()) << "half"; }
  ReportSpool reopened(d.string(), 10);
  EXPECT_FALSE(fs::exists(d / "00000000000000000002.report.tmp-deadbeef"));
  std::vector<std::string> got;
  reopened.deliver([&](const std::string& b) {
    got.push_back(b);
    return true;
  });
  EXPECT_EQ(got, std::vector<std::string>{"a"});
  fs::remove_all(d);
}

TEST(ReportSpool, SenderExceptionKeepsTheReport) {
  auto d = fresh("throw");
  ReportSpool s(d.string(), 10);
  s.push("a");
  EXPECT_THROW(s.deliver([](const std::string&) -> bool { throw std::runtime_error("boom"); }), std::runtime_error);
  EXPECT_EQ(s.size(), 1u);
  fs::remove_all(d);
}

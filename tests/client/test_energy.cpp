// Energy meters against sample sysfs/hwmon/proc trees and recorded-format vcgencmd output
// (tests/client/data), the model meter against hand-computed values.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "support/test_paths.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "energy/energy_meter.h"
#include "energy/hwmon_meter.h"
#include "energy/model_meter.h"
#include "energy/pmic_meter.h"
#include "energy/rapl_meter.h"

using namespace tsm::client;
namespace fs = std::filesystem;

namespace {
const fs::path kData = fs::path(TSM_SOURCE_DIR) / "tests" / "client" / "data";

/// A writable copy of a data tree (meters read live files; tests change them between readings).
fs::path copy_tree(const std::string& name) {
  auto d = fs::temp_directory_path() / ("tsm_energy_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::copy(kData / name, d, fs::copy_options::recursive);
  return d;
}
void put(const fs::path& p, const std::string& v) { std::ofstream(p) << v << "\n"; }
}  // namespace

TEST(Rapl, CounterDeltaHandlesWrapAround) {
  EXPECT_EQ(counter_delta(10, 25, 100), 15u);
  EXPECT_EQ(counter_delta(90, 5, 100), 15u);  // 90 -> 100 (wrap) -> 5
  EXPECT_EQ(counter_delta(7, 7, 100), 0u);
}

TEST(Rapl, SumsPackagesIgnoresSubdomainsAndSurvivesWrap) {
  auto root = copy_tree("rapl");
  auto pc = root / "class" / "powercap";
  RaplMeter m(root.string(), std::chrono::hours(1));  // no background poll: the test drives readings
  m.start();
  EXPECT_EQ(m.name(), "rapl");
  EXPECT_NE(m.detail().find("2 package"), std::string::npos) << m.detail();
  EXPECT_DOUBLE_EQ(m.joules(), 0.0);
  // package-0 wraps: 262143000000 -> max 262143328850 -> 1000000 ; package-1 adds 2.5 J.
  put(pc / "intel-rapl:0" / "energy_uj", "1000000");
  put(pc / "intel-rapl:0:0" / "energy_uj", "999999999");  // sub-domain: must not count
  put(pc / "intel-rapl:1" / "energy_uj", "3500000");
  const double expect = (328850.0 + 1000000.0 + 2500000.0) * 1e-6;
  EXPECT_NEAR(m.joules(), expect, 1e-9);
  put(pc / "intel-rapl:0" / "energy_uj", "2000000");
  EXPECT_NEAR(m.joules(), expect + 1.0, 1e-9);
  m.stop();
  fs::remove_all(root);
}

TEST(Rapl, MissingOrCorruptTreeIsAnError) {
  RaplMeter none((kData / "nonexistent").string());
  EXPECT_THROW(none.start(), tsm::Error);
  auto root = copy_tree("rapl");
  put(root / "class" / "powercap" / "intel-rapl:1" / "energy_uj", "garbage");
  RaplMeter bad(root.string());
  EXPECT_THROW(bad.start(), tsm::Error);
  fs::remove_all(root);
}

TEST(Integrator, TrapezoidIsExactForLinearPower) {
  PowerIntegrator p;
  p.add(0.0, 2.0);
  p.add(1.0, 4.0);  // mean 3 W over 1 s
  p.add(3.0, 4.0);  // 4 W over 2 s
  EXPECT_DOUBLE_EQ(p.joules(), 3.0 + 8.0);
  p.add(2.0, 100.0);  // out of order: ignored in the integral
  EXPECT_DOUBLE_EQ(p.joules(), 11.0);
}

TEST(Hwmon, PicksFirstInaChipAndIntegratesPower) {
  auto root = copy_tree("hwmon_ina226");
  HwmonMeter m(root.string(), std::chrono::milliseconds(10));
  m.start();
  EXPECT_NE(m.detail().find("ina226"), std::string::npos) << m.detail();  // hwmon1, not the ina219 at hwmon2
  EXPECT_NE(m.detail().find("power1_input"), std::string::npos);
  EXPECT_NEAR(m.uncertainty_rel(), 0.04, 1e-12);
  auto t0 = std::chrono::steady_clock::now();
  double j0 = m.joules();
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  double j1 = m.joules();
  double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  m.stop();
  // Constant 5.125 W: energy = P x elapsed (the bracketing reads make dt an upper bound).
  EXPECT_GT(j1 - j0, 5.125 * 0.140);
  EXPECT_LE(j1 - j0, 5.125 * dt + 1e-9);
  fs::remove_all(root);
}

TEST(Hwmon, PrefersEnergyCounter) {
  auto root = copy_tree("hwmon_energy");
  HwmonMeter m(root.string());
  m.start();
  EXPECT_NE(m.detail().find("energy1_input"), std::string::npos);
  put(root / "class" / "hwmon" / "hwmon0" / "energy1_input", "4500000");
  EXPECT_NEAR(m.joules(), 3.5, 1e-12);
  fs::remove_all(root);
}

TEST(Hwmon, NoSupportedChipIsAnError) {
  auto root = copy_tree("hwmon_ina226");
  fs::remove_all(root / "class" / "hwmon" / "hwmon1");
  fs::remove_all(root / "class" / "hwmon" / "hwmon2");
  HwmonMeter m(root.string());
  EXPECT_THROW(m.start(), tsm::Error);
  fs::remove_all(root);
}

TEST(Pmic, SumsPairedRailsOfRecordedOutput) {
  auto text = tsm::read_file((kData / "pi5" / "pmic_read_adc.txt").string());
  auto r = parse_pmic_adc(text);
  // Hand sum of V x I over the 11 rails that have both readings (0V8_SW has no volt line,
  // EXT5V/BATT/0V8_AON no current line): 1.65054295242273 W.
  EXPECT_EQ(r.rails, 11);
  EXPECT_NEAR(r.watts, 1.65054295242273, 1e-9);
}

TEST(Pmic, CorruptOutputIsAFormatError) {
  EXPECT_THROW(parse_pmic_adc(""), tsm::FormatError);
  EXPECT_THROW(parse_pmic_adc("error=1 error_msg=\"Command not registered\"\n"), tsm::FormatError);
  EXPECT_THROW(parse_pmic_adc("  VDD_CORE_A current(7)=0.7A\n"), tsm::FormatError);  // no matching volt
  auto r = parse_pmic_adc("  VDD_CORE_A current(7)=2.0A\n  VDD_CORE_V volt(15)=zzzV\n  VDD_CORE_V volt(15)=0.5V\n");
  EXPECT_DOUBLE_EQ(r.watts, 1.0);
}

TEST(Pmic, MeterRunsTheCommandAndIntegrates) {
  PmicMeter m("cat " + (kData / "pi5" / "pmic_read_adc.txt").string(), std::chrono::milliseconds(20));
  m.start();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  double j = m.joules();
  m.stop();
  EXPECT_GT(j, 1.65 * 0.09);
  EXPECT_LT(j, 1.66 * 2.0);
  EXPECT_NE(m.detail().find("11 PMIC rails"), std::string::npos) << m.detail();
  PmicMeter broken("false");
  EXPECT_THROW(broken.start(), tsm::Error);
}

TEST(Model, BoardFitsAreThePublishedCoefficients) {
  auto p5 = board_fit("Raspberry Pi 5 Model B Rev 1.0", 0, 0);
  EXPECT_DOUBLE_EQ(p5.idle_w, 4.4032);
  EXPECT_DOUBLE_EQ(p5.slope_w, 3.4579);
  auto p4 = board_fit("Raspberry Pi 4 Model B Rev 1.4", 0, 0);
  EXPECT_DOUBLE_EQ(p4.idle_w, 2.2857);
  EXPECT_DOUBLE_EQ(p4.slope_w, 4.5344);
  auto other = board_fit("Some Board", 3.0, 9.0);
  EXPECT_EQ(other.board, "configured");
  EXPECT_DOUBLE_EQ(other.slope_w, 6.0);
  EXPECT_TRUE(board_fit("Some Board", 0, 0).board.empty());
  EXPECT_TRUE(board_fit("Some Board", 5, 4).board.empty());  // max below idle is not a fit
}

TEST(Model, Pi5EnergyMatchesHandComputation) {
  ModelMeter m((kData / "proc_pi5").string(), 0, 0);
  m.start();
  EXPECT_NE(m.detail().find("Raspberry Pi 5"), std::string::npos) << m.detail();
  // Restart the virtual clock at t=0 with the first snapshot: busy 200, total 1000.
  m.joules_at(0.0, "cpu  100 0 100 800 0 0 0 0 0 0\n");
  // +300 busy, +100 idle over 2 s: u = 0.75; P = 4.4032 + 3.4579 * 0.75 = 6.996625 W; E = 13.99325 J.
  EXPECT_NEAR(m.joules_at(2.0, "cpu  300 0 200 900 0 0 0 0 0 0\n"), 13.99325, 1e-9);
  // Idle second: u = 0 -> + 4.4032 J (iowait counts as idle).
  EXPECT_NEAR(m.joules_at(3.0, "cpu  300 0 200 950 50 0 0 0 0 0\n"), 13.99325 + 4.4032, 1e-9);
  EXPECT_THROW(m.joules_at(4.0, "intr 5\n"), tsm::FormatError);
  EXPECT_THROW(parse_proc_stat("cpu  1 2\n"), tsm::FormatError);
}

TEST(Model, Pi4AndUnknownBoards) {
  ModelMeter p4((kData / "proc_pi4").string(), 0, 0);
  p4.start();
  p4.joules_at(0.0, "cpu  0 0 0 1000 0 0 0 0\n");
  // u = 0.5 for 4 s: (2.2857 + 4.5344 * 0.5) * 4 = 18.2116 J
  EXPECT_NEAR(p4.joules_at(4.0, "cpu  250 0 250 1500 0 0 0 0\n"), 18.2116, 1e-9);
  ModelMeter unknown((kData / "proc_x86").string(), 0, 0);
  EXPECT_THROW(unknown.start(), tsm::Error);
  ModelMeter configured((kData / "proc_x86").string(), 10.0, 30.0);
  configured.start();
  EXPECT_DOUBLE_EQ(configured.uncertainty_rel(), 0.25);
}

TEST(Factory, AutoPicksFirstWorkingSourceAndSaysWhich) {
  EnergyConfig c;
  c.sysfs_root = (kData / "hwmon_ina226").string();
  c.proc_root = (kData / "proc_pi5").string();
  c.vcgencmd = "false";
  std::string why;
  auto m = make_energy_meter(c, &why);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->name(), "hwmon");
  EXPECT_NE(why.find("auto picked hwmon"), std::string::npos) << why;
  m->stop();

  c.sysfs_root = (kData / "nonexistent").string();  // no hwmon, no rapl, vcgencmd fails -> model
  auto m2 = make_energy_meter(c, &why);
  ASSERT_TRUE(m2);
  EXPECT_EQ(m2->name(), "model");
  EXPECT_NE(why.find("skipped hwmon"), std::string::npos) << why;
  EXPECT_NE(why.find("skipped pi5-pmic"), std::string::npos) << why;

  c.proc_root = (kData / "proc_x86").string();  // nothing works
  EXPECT_EQ(make_energy_meter(c, &why), nullptr);
  EXPECT_NE(why.find("no usable source"), std::string::npos);

  c.source = "rapl";  // named source that fails: an error, not a silent fallback
  EXPECT_THROW(make_energy_meter(c), tsm::Error);
  c.source = "bogus";
  EXPECT_THROW(make_energy_meter(c), tsm::ParamError);
  c.source = "none";
  EXPECT_EQ(make_energy_meter(c), nullptr);
}

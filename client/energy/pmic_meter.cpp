#include "energy/pmic_meter.h"

#include <cstdio>
#include <map>
#include <memory>
#include <regex>
#include <sstream>

#include "common/error.h"

namespace tsm::client {

PmicReading parse_pmic_adc(const std::string& text) {
  // name_A current(N)=valueA   /   name_V volt(N)=valueV
  static const std::regex line(R"(^\s*(\S+)_([AV])\s+(current|volt)\(\d+\)=([-+0-9.eE]+)([AV])\s*$)");
  std::map<std::string, double> amps, volts;
  std::istringstream in(text);
  std::string l;
  while (std::getline(in, l)) {
    std::smatch m;
    if (!std::regex_match(l, m, line)) continue;
    double v;
    try {
      v = std::stod(m[4].str());
    } catch (const std::exception&) {
      continue;
    }
    if (m[2] == "A" && m[3] == "current" && m[5] == "A") amps[m[1]] = v;
    if (m[2] == "V" && m[3] == "volt" && m[5] == "V") volts[m[1]] = v;
  }
  PmicReading r;
  for (const auto& [rail, a] : amps) {
    auto it = volts.find(rail);
    if (it == volts.end()) continue;
    r.watts += a * it->second;
    ++r.rails;
  }
  if (r.rails == 0) throw FormatError("pmic_read_adc output has no rail with both a current and a volt line");
  return r;
}

std::string PmicMeter::detail() const {
  return "sum of " + std::to_string(rails_) + " PMIC rails V x I from `" + command_ + "` (excludes conversion losses, USB)";
}

double PmicMeter::read_watts() {
  std::unique_ptr<FILE, int (*)(FILE*)> p(::popen((command_ + " 2>/dev/null").c_str(), "r"), ::pclose);
  if (!p) throw Error("pi5-pmic: cannot run '" + command_ + "'");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p.get())) > 0) out.append(buf, n);
  PmicReading r = parse_pmic_adc(out);
  rails_ = r.rails;
  return r.watts;
}

}  // namespace tsm::client

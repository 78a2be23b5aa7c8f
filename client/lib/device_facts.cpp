#include "lib/device_facts.h"

#include <sys/utsname.h>

#include <fstream>
#include <map>
#include <sstream>
#include <thread>

namespace tsm::client {

namespace {
std::string slurp(const std::string& path, size_t max = 1 << 20) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return "";
  std::string s(max, '\0');
  f.read(s.data(), static_cast<std::streamsize>(max));
  s.resize(static_cast<size_t>(f.gcount()));
  return s;
}
std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\0' || s.back() == '\n' || s.back() == ' ' || s.back() == '\t' || s.back() == '"'))
    s.pop_back();
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '"')) ++i;
  return s.substr(i);
}
/// "key : value" lines of /proc/cpuinfo; the first occurrence of each key.
std::map<std::string, std::string> cpuinfo_fields(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  std::string l;
  while (std::getline(in, l)) {
    auto c = l.find(':');
    if (c == std::string::npos) continue;
    auto k = trim(l.substr(0, c));
    if (!out.count(k)) out[k] = trim(l.substr(c + 1));
  }
  return out;
}
}  // namespace

std::string arm_core_name(unsigned implementer, unsigned part) {
  if (implementer != 0x41) return "";
  switch (part) {
    case 0xd03: return "Cortex-A53";
    case 0xd04: return "Cortex-A35";
    case 0xd05: return "Cortex-A55";
    case 0xd07: return "Cortex-A57";
    case 0xd08: return "Cortex-A72";
    case 0xd09: return "Cortex-A73";
    case 0xd0a: return "Cortex-A75";
    case 0xd0b: return "Cortex-A76";
    case 0xd0c: return "Neoverse-N1";
    case 0xd0d: return "Cortex-A77";
    case 0xd40: return "Neoverse-V1";
    case 0xd41: return "Cortex-A78";
    case 0xd49: return "Neoverse-N2";
    default: return "";
  }
}

tensorslm::v1::DeviceFacts read_device_facts(const std::string& device_id, const FactRoots& roots) {
  tensorslm::v1::DeviceFacts f;
  f.set_device_id(device_id);
  f.set_board(trim(slurp(roots.proc + "/device-tree/model", 4096)));
  auto cpu = cpuinfo_fields(slurp(roots.proc + "/cpuinfo"));
  if (cpu.count("model name")) {
    f.set_cpu(cpu["model name"]);
  } else if (cpu.count("CPU part")) {
    unsigned impl = 0, part = 0;
    try {
      impl = static_cast<unsigned>(std::stoul(cpu["CPU implementer"], nullptr, 0));
      part = static_cast<unsigned>(std::stoul(cpu["CPU part"], nullptr, 0));
    } catch (const std::exception&) {
    }
    auto name = arm_core_name(impl, part);
    f.set_cpu(name.empty() ? "ARM part " + cpu["CPU part"] : name);
  }
  if (f.board().empty() && cpu.count("Model")) f.set_board(cpu["Model"]);
  // Cores: the processor entries of cpuinfo when a test tree is given, else what the kernel lets us run on.
  int procs = 0;
  {
    std::istringstream in(slurp(roots.proc + "/cpuinfo"));
    std::string l;
    while (std::getline(in, l))
      if (l.rfind("processor", 0) == 0) ++procs;
  }
  f.set_cores(procs > 0 ? static_cast<uint32_t>(procs) : std::thread::hardware_concurrency());
  {
    std::istringstream in(slurp(roots.proc + "/meminfo"));
    std::string key;
    uint64_t kb = 0;
    while (in >> key) {
      if (key == "MemTotal:" && (in >> kb)) {
        f.set_mem_bytes(kb * 1024);
        break;
      }
      std::string rest;
      std::getline(in, rest);
    }
  }
  {
    std::istringstream in(slurp(roots.etc + "/os-release"));
    std::string l;
    while (std::getline(in, l))
      if (l.rfind("PRETTY_NAME=", 0) == 0) f.set_os(trim(l.substr(12)));
  }
  struct utsname u {};
  if (::uname(&u) == 0) {
    f.set_arch(u.machine);
    if (f.os().empty()) f.set_os(std::string(u.sysname) + " " + u.release);
  }
  f.set_agent_version(TSM_VERSION);
  return f;
}

}  // namespace tsm::client

// Facts about the device an agent runs on, read from /proc, /etc/os-release and uname: board model
// (/proc/device-tree/model when present), CPU name (model name, or the ARM part number mapped to
// its core name), core count, memory, OS, arch and the agent's version.
#pragma once
#include <string>

#include "report.pb.h"

namespace tsm::client {

struct FactRoots {
  std::string proc = "/proc";  ///< tests point these at sample trees
  std::string etc = "/etc";
};

/// Never throws: a fact that cannot be read is left empty (or 0).
tensorslm::v1::DeviceFacts read_device_facts(const std::string& device_id, const FactRoots& roots = {});

/// "Cortex-A72" for ARM implementer 0x41 part 0xd08, etc.; "" when unknown.
std::string arm_core_name(unsigned implementer, unsigned part);

}  // namespace tsm::client

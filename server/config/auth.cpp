#include "config/auth.h"

#include <spdlog/spdlog.h>

#include <cctype>

#include "common/sha256.h"

namespace tsm::server {

bool Principal::allows(Perm p) const {
  if (p == Perm::Public || admin) return true;
  switch (p) {
    case Perm::Upload: case Perm::Jobs: case Perm::Read: return ci;
    case Perm::Models: return ci || device;
    case Perm::PostReports: return device;
    case Perm::Metrics: return metrics;
    default: return false;
  }
}

bool Principal::may_report_for(std::string_view id) const {
  if (admin) return true;
  if (!device) return false;
  for (const auto& d : devices) {
    if (!d.empty() && d.back() == '*') {
      if (id.substr(0, d.size() - 1) == std::string_view(d).substr(0, d.size() - 1)) return true;
    } else if (id == d) {
      return true;
    }
  }
  return false;
}

Authenticator::Authenticator(const std::vector<TokenConfig>& tokens) {
  for (const auto& t : tokens) {
    Principal p;
    p.name = t.name;
    for (const auto& s : t.scopes) {
      if (s == "admin") p.admin = true;
      if (s == "ci") p.ci = true;
      if (s == "device") p.device = true;
      if (s == "metrics") p.metrics = true;
    }
    p.devices = t.devices;
    if (p.device && !p.admin && p.devices.empty())
      spdlog::warn("token '{}' has the device scope but no \"devices\": it reads models but may post reports for no "
                   "device (list its device ids, a prefix such as \"pi-*\", or \"*\" for any)",
                   t.name);
    // Hashes compare as sha256_hex writes them: lower-case (a config may well use upper case).
    std::string h = t.sha256;
    for (char& c : h) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    by_hash_[h] = p;
  }
}

std::optional<Principal> Authenticator::authenticate(std::string_view h) const {
  constexpr std::string_view kBearer = "Bearer ";
  if (h.size() <= kBearer.size() || h.substr(0, kBearer.size()) != kBearer) return std::nullopt;
  auto it = by_hash_.find(sha256_hex(h.substr(kBearer.size())));
  if (it == by_hash_.end()) return std::nullopt;
  return it->second;
}

}  // namespace tsm::server

// Bearer-token authorization. Tokens are configured as sha256 hashes with scopes; a request's
// token is hashed and looked up. Invariant: with no tokens configured auth is off (loopback only,
// enforced by Config::validate) and every request acts as admin.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config/config.h"

namespace tsm::server {

/// What a route needs. Scopes grant: admin -> all; ci -> upload, jobs, read, models;
/// device -> models, reports (for the devices its token lists); metrics -> /metrics.
enum class Perm { Public, Upload, Jobs, Read, Models, PostReports, Metrics, Admin };

struct Principal {
  std::string name;
  bool admin = false, ci = false, device = false, metrics = false;
  std::vector<std::string> devices;  ///< device ids or "prefix*" (TokenConfig::devices)
  bool allows(Perm p) const;
  /// Whether this principal may post a report as `device_id`: admin (auth off included), or a
  /// device token whose `devices` lists the id or a prefix of it.
  bool may_report_for(std::string_view device_id) const;
};

class Authenticator {
 public:
  explicit Authenticator(const std::vector<TokenConfig>& tokens);
  bool enabled() const { return !by_hash_.empty(); }
  /// From the Authorization header value; nullopt when missing or unknown.
  std::optional<Principal> authenticate(std::string_view authorization) const;

 private:
  std::unordered_map<std::string, Principal> by_hash_;
};

}  // namespace tsm::server

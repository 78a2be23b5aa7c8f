// The one error type of a full disk, shared by the blob store, the metadata store and the HTTP edge.
#pragma once
#include "common/error.h"

namespace tsm::server {

/// The disk under the data directory is full (ENOSPC / EDQUOT, or SQLITE_FULL): the HTTP edge
/// answers 507 Insufficient Storage (http/problem.h). Whoever throws it has already removed what it
/// half-wrote.
class StorageFull : public Error {
 public:
  using Error::Error;
};

}  // namespace tsm::server

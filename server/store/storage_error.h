// The error types of the server's own storage (blob directory, model directories, database),
// shared by the blob store, the metadata store, upload ingest and the HTTP edge. They say the
// server could not keep what it was sent, through no fault of the request's content.
#pragma once
#include "common/error.h"

namespace tsm::server {

/// Writing, moving or creating under the data directory failed for a reason other than space
/// (EIO, EROFS, EACCES, SQLITE_IOERR / READONLY ...): the HTTP edge answers 500 problem+json with
/// reason "storage_error" (http/problem.h). Whoever throws it has already removed what it half-wrote.
class StorageError : public Error {
 public:
  using Error::Error;
};

/// A shared store's database cannot be reached, or it dropped the connection during the call
/// (PostgreSQL: no connection, SQLSTATE classes 08 and 57): no fault of the request, and the same
/// call may succeed once the database is back: 503 Service Unavailable, reason "store_unavailable".
class StoreUnavailable : public StorageError {
 public:
  using StorageError::StorageError;
};

/// The disk under the data directory is full (ENOSPC / EDQUOT, or SQLITE_FULL): 507 Insufficient
/// Storage, reason "disk_full".
class StorageFull : public StorageError {
 public:
  using StorageError::StorageError;
};

}  // namespace tsm::server

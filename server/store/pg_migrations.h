// PostgresStore's versioned schema: an append-only list of SQL scripts. Invariant: entry i (1-based)
// is schema version i; an applied entry is never edited (append a new one instead). They are run
// by pg_migrate(), in order, each in its own transaction, while the session holds the
// advisory lock kMigrationLockKey, so that processes starting at once migrate once.
#pragma once
#include <span>

struct pg_conn;

namespace tsm::server {

/// The SQL of each version, in order (kPgMigrations[0] is version 1).
std::span<const char* const> pg_migrations();

/// pg_advisory_lock key held while migrating ("tsm-mig" in ASCII).
inline constexpr long long kMigrationLockKey = 0x74736d2d6d6967LL;

/// Applies the missing migrations on `conn` under the advisory lock; returns the schema version.
/// Throws tsm::Error naming the version that failed, or when the database is newer than this server.
int pg_migrate(pg_conn* conn);

}  // namespace tsm::server

// Start-up sweep of what a kill -9 can leave between a file's rename into place and the insert of
// the row that names it: blob files (<root>/blobs/<sha[0:2]>/<sha>) and extracted model directories
// (<models_dir>/<sha>/) whose sha256 no upload or artifact row names (MetadataStore::blob_refs == 0).
// Invariant it restores: every blob and model directory on disk is referenced by the store.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

#include "store/blob_store.h"
#include "store/store.h"

namespace tsm::server {

struct SweepResult {
  int blobs = 0;       ///< blob files removed
  int model_dirs = 0;  ///< model directories removed
  uint64_t bytes = 0;  ///< bytes of the removed blob files
};

/// Removes the unreferenced blobs and model directories last modified more than `min_age` ago.
/// A single process sweeps at start-up with min_age 0, before it accepts requests or runs jobs, when
/// nothing can be in flight; processes sharing a store give an age no ingest or job takes (another
/// process may be between its rename and its insert). Names that are not sha256 hex are left alone.
SweepResult sweep_unreferenced(BlobStore& blobs, MetadataStore& store, const std::string& models_dir,
                               std::chrono::seconds min_age);

}  // namespace tsm::server

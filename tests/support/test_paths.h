// Where the checkout, its test fixtures and the built binaries are, for tests. The paths live in one
// generated translation unit (test_paths.cpp.in, configured per build directory), so no test's
// object file or compile command holds an absolute path: another clone of the same sources (CI's)
// reuses every test object from ccache. The macros keep the spelling tests use:
// std::string(TSM_FIXTURES_DIR) + "/gpt2-tiny".
#pragma once

namespace tsm::testing {
const char* source_dir();    ///< the checkout (PROJECT_SOURCE_DIR)
const char* fixtures_dir();  ///< <checkout>/tests/fixtures
const char* bin_dir();       ///< <build dir>/bin: tensorslm, tensorslm-server, tensorslm-agent
}  // namespace tsm::testing

#define TSM_SOURCE_DIR (::tsm::testing::source_dir())
#define TSM_FIXTURES_DIR (::tsm::testing::fixtures_dir())
#define TSM_BIN_DIR (::tsm::testing::bin_dir())

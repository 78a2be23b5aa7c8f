// Shared by the fuzz targets (fuzz_<name>.cpp): the input as bytes and text, a per-process scratch
// directory, and `finding()`, which aborts (a libFuzzer crash) when a target sees an invariant broken.
// Convention of every target: the documented errors of the parser under test (tsm::Error and its
// subclasses; HttpError at the server's edge) are caught and fine; anything else escapes and is a
// finding: a crash, a sanitizer report, std::bad_alloc from an unbounded allocation, another exception.
#pragma once
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <string_view>

namespace tsm::fuzz {

inline std::span<const std::byte> bytes(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const std::byte*>(data), size};
}
inline std::string_view text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

/// An invariant the target checks is broken: say which, and abort (libFuzzer saves the input).
[[noreturn]] inline void finding(const std::string& what) {
  std::fprintf(stderr, "FUZZ FINDING: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

/// A scratch directory for this process ($TMPDIR or /tmp), created on first use, removed at exit.
inline const std::string& scratch_dir(const char* target) {
  static const std::string dir = [target] {
    const char* t = std::getenv("TMPDIR");
    std::string d = std::string(t && *t ? t : "/tmp") + "/tsm-fuzz-" + target + "-" + std::to_string(::getpid());
    std::filesystem::remove_all(d);
    std::filesystem::create_directories(d);
    static struct Remove {
      std::string d;
      ~Remove() {
        std::error_code ec;
        std::filesystem::remove_all(d, ec);
      }
    } remove{d};
    return d;
  }();
  return dir;
}

inline void write_file(const std::string& path, std::string_view content) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(content.data(), static_cast<std::streamsize>(content.size()));
  if (!f) finding("cannot write scratch file " + path);
}

}  // namespace tsm::fuzz

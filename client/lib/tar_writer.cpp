#include "lib/tar_writer.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "common/error.h"

namespace tsm::client {
namespace fs = std::filesystem;

namespace {

void octal(char* field, size_t width, uint64_t v) {
  // width - 1 octal digits and a NUL, as ustar wants (callers keep v below 8^(width-1)).
  char buf[32];
  std::snprintf(buf, sizeof buf, "%0*llo", static_cast<int>(width - 1), static_cast<unsigned long long>(v));
  std::memcpy(field, buf, width - 1);
  field[width - 1] = '\0';
}

/// Fills a 512-byte ustar header for a regular file.
void make_header(char* h, const std::string& rel, uint64_t size, uint64_t mtime) {
  std::memset(h, 0, 512);
  std::string name = rel, prefix;
  if (name.size() > 100) {
    // Split at a '/' so that prefix <= 155 and name <= 100.
    size_t cut = std::string::npos;
    for (size_t i = 0; i < rel.size(); ++i)
      if (rel[i] == '/' && i <= 155 && rel.size() - i - 1 <= 100 && rel.size() - i - 1 > 0) {
        cut = i;
        break;
      }
    if (cut == std::string::npos) throw Error("path '" + rel + "' is too long for a ustar archive");
    prefix = rel.substr(0, cut);
    name = rel.substr(cut + 1);
  }
  if (size > 077777777777ull) throw Error("file '" + rel + "' is larger than 8 GiB, the ustar limit");
  std::memcpy(h, name.data(), name.size());
  octal(h + 100, 8, 0644);
  octal(h + 108, 8, 0);
  octal(h + 116, 8, 0);
  octal(h + 124, 12, size);
  octal(h + 136, 12, mtime);
  h[156] = '0';
  std::memcpy(h + 257, "ustar", 6);  // magic "ustar\0"
  std::memcpy(h + 263, "00", 2);
  std::memcpy(h + 345, prefix.data(), prefix.size());
  std::memset(h + 148, ' ', 8);  // checksum: sum of header bytes with the field as spaces
  unsigned sum = 0;
  for (int i = 0; i < 512; ++i) sum += static_cast<unsigned char>(h[i]);
  std::snprintf(h + 148, 8, "%06o", sum);
  h[155] = ' ';
}

}  // namespace

TarStats write_tar(const std::string& dir, const std::string& out_path) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw Error("'" + dir + "' is not a directory");
  std::vector<std::string> files;  // paths relative to dir
  for (auto it = fs::recursive_directory_iterator(dir, ec); it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) throw Error("cannot list '" + dir + "': " + ec.message());
    if (it->is_regular_file()) files.push_back(fs::relative(it->path(), dir).generic_string());
  }
  if (ec) throw Error("cannot list '" + dir + "': " + ec.message());
  std::sort(files.begin(), files.end());
  std::ofstream out(out_path, std::ios::binary | std::ios::trunc);
  if (!out) throw Error("cannot create '" + out_path + "'");
  TarStats st;
  char header[512];
  std::vector<char> buf(size_t(1) << 20);  // (1 MiB) copy buffer
  for (const auto& rel : files) {
    const fs::path src = fs::path(dir) / rel;
    std::ifstream in(src, std::ios::binary);
    if (!in) throw Error("cannot read '" + src.string() + "'");
    const uint64_t size = fs::file_size(src);
    const auto mtime = std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::file_clock::to_sys(fs::last_write_time(src)).time_since_epoch())
                           .count();
    make_header(header, rel, size, mtime > 0 ? static_cast<uint64_t>(mtime) : 0);
    out.write(header, 512);
    uint64_t left = size;
    while (left > 0) {
      in.read(buf.data(), static_cast<std::streamsize>(std::min<uint64_t>(left, buf.size())));
      const auto n = in.gcount();
      if (n <= 0) throw Error("'" + src.string() + "' changed size while it was archived");
      out.write(buf.data(), n);
      left -= static_cast<uint64_t>(n);
    }
    const size_t pad = (512 - size % 512) % 512;
    std::memset(header, 0, 512);
    out.write(header, static_cast<std::streamsize>(pad));
    st.bytes += 512 + size + pad;
    ++st.files;
  }
  std::memset(header, 0, 512);
  out.write(header, 512);
  out.write(header, 512);
  st.bytes += 1024;
  out.flush();
  if (!out) throw Error("cannot write '" + out_path + "'");
  return st;
}

}  // namespace tsm::client

#include "formats/npy.h"

#include <cctype>
#include <cstring>

#include "common/atomic_file.h"
#include "common/error.h"
#include "formats/mapped_file.h"

namespace tsm {

namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;
constexpr size_t kMaxHeaderLen = size_t(1) << 20;  // numpy itself refuses headers over 10 kB by default

// A tiny reader for the Python literal dict numpy writes: {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
// Offsets in errors are file offsets (base = start of the header text).
class DictReader {
 public:
  DictReader(std::string_view s, size_t base) : s_(s), base_(base) {}

  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  bool peek(char c) {
    skip_ws();
    return i_ < s_.size() && s_[i_] == c;
  }
  void expect(char c, const char* what) {
    skip_ws();
    if (i_ >= s_.size() || s_[i_] != c) fail(std::string("npy header: expected ") + what);
    ++i_;
  }
  std::string string_lit() {
    skip_ws();
    if (i_ >= s_.size() || (s_[i_] != '\'' && s_[i_] != '"')) fail("npy header: expected a quoted string");
    char q = s_[i_++];
    size_t start = i_;
    while (i_ < s_.size() && s_[i_] != q) {
      if (s_[i_] == '\\') fail("npy header: escapes in strings are not supported");
      ++i_;
    }
    if (i_ >= s_.size()) fail("npy header: unterminated string");
    return std::string(s_.substr(start, i_++ - start));
  }
  bool bool_lit() {
    skip_ws();
    if (s_.substr(i_, 4) == "True") { i_ += 4; return true; }
    if (s_.substr(i_, 5) == "False") { i_ += 5; return false; }
    fail("npy header: expected True or False");
  }
  int64_t int_lit() {
    skip_ws();
    size_t start = i_;
    int64_t v = 0;
    while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) {
      if (v > (int64_t{1} << 56)) fail("npy header: dimension too large");
      v = v * 10 + (s_[i_] - '0');
      ++i_;
    }
    if (i_ < s_.size() && s_[i_] == 'L') ++i_;  // Python 2 longs
    if (i_ == start) fail("npy header: expected a non-negative integer");
    return v;
  }
  std::vector<int64_t> tuple_lit() {
    expect('(', "'(' opening the shape tuple");
    std::vector<int64_t> out;
    while (!peek(')')) {
      out.push_back(int_lit());
      if (out.size() > 32) fail("npy header: shape has more than 32 dimensions");
      if (peek(',')) { ++i_; continue; }
      if (!peek(')')) fail("npy header: expected ',' or ')' in the shape tuple");
    }
    ++i_;
    return out;
  }
  bool at_end() {
    skip_ws();
    return i_ >= s_.size();
  }
  size_t pos() const { return base_ + i_; }
  [[noreturn]] void fail(const std::string& what) const { throw FormatError(what, static_cast<int64_t>(base_ + i_)); }

 private:
  std::string_view s_;
  size_t base_;
  size_t i_ = 0;
};

DType descr_dtype(const std::string& d, size_t offset) {
  if (d == "<f4") return DType::F32;
  if (d == "<f2") return DType::F16;
  if (d == "<f8") return DType::F64;
  std::string why;
  if (d.size() >= 2 && d[0] == '>') why = "big-endian data is not supported";
  else if (d.size() >= 2 && (d[1] == 'i' || d[1] == 'u' || d[1] == 'b')) why = "integer/bool arrays are not supported";
  else if (d.size() >= 2 && d[1] == 'O') why = "object arrays are not supported";
  else if (d.size() >= 2 && d[1] == 'c') why = "complex arrays are not supported";
  else if (d.size() >= 2 && d[0] == '|') why = "byte order '|' is not accepted";
  else why = "unsupported dtype";
  throw FormatError("npy dtype '" + d + "': " + why + " (expected little-endian float: '<f4', '<f2' or '<f8')",
                    static_cast<int64_t>(offset));
}

std::string_view npy_descr(DType t) {
  switch (t) {
    case DType::F32: return "<f4";
    case DType::F16: return "<f2";
    case DType::F64: return "<f8";
    default: throw Error("npy: cannot write dtype " + std::string(dtype_name(t)) + " (only f32, f16, f64, bf16 as f32)");
  }
}

}  // namespace

NpyHeader parse_npy_header(std::span<const std::byte> prefix) {
  const auto* p = reinterpret_cast<const unsigned char*>(prefix.data());
  size_t n = prefix.size();
  if (n < kMagicLen || std::memcmp(p, kMagic, kMagicLen) != 0) {
    std::string found;
    for (size_t i = 0; i < std::min<size_t>(n, 6); ++i) {
      char buf[5];
      std::snprintf(buf, sizeof buf, "%02x", p[i]);
      found += buf;
    }
    throw FormatError("not an npy file: magic is " + (found.empty() ? std::string("missing") : "0x" + found) +
                      ", expected 0x934e554d5059 (\\x93NUMPY)", 0);
  }
  if (n < 8) throw FormatError("npy file truncated in the version bytes", static_cast<int64_t>(n));
  unsigned major = p[6], minor = p[7];
  if (major < 1 || major > 3 || minor != 0)
    throw FormatError("npy version " + std::to_string(major) + "." + std::to_string(minor) + " is not supported (1.0, 2.0, 3.0)", 6);
  size_t len_bytes = major == 1 ? 2 : 4;
  if (n < 8 + len_bytes) throw FormatError("npy file truncated in the header length", static_cast<int64_t>(n));
  size_t hlen = 0;
  for (size_t i = 0; i < len_bytes; ++i) hlen |= size_t(p[8 + i]) << (8 * i);
  size_t hstart = 8 + len_bytes;
  if (hlen > kMaxHeaderLen)
    throw FormatError("npy header length " + std::to_string(hlen) + " exceeds the limit of " + std::to_string(kMaxHeaderLen), 8);
  if (n < hstart + hlen)
    throw FormatError("npy file truncated: header declares " + std::to_string(hlen) + " bytes, only " +
                      std::to_string(n - hstart) + " present", static_cast<int64_t>(n));
  std::string_view text(reinterpret_cast<const char*>(p + hstart), hlen);
  for (size_t i = 0; i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == 0 || (major < 3 && c >= 0x80)) throw FormatError("npy header contains a non-ASCII byte", static_cast<int64_t>(hstart + i));
  }

  DictReader r(text, hstart);
  NpyHeader h;
  bool have_descr = false, have_order = false, have_shape = false, fortran = false;
  std::string descr;
  r.expect('{', "'{' opening the header dict");
  while (!r.peek('}')) {
    size_t key_pos = r.pos();
    std::string key = r.string_lit();
    r.expect(':', "':' after a key");
    if (key == "descr") {
      if (have_descr) r.fail("npy header: duplicate key 'descr'");
      if (r.peek('[')) r.fail("npy header: structured dtypes are not supported");
      descr = r.string_lit();
      have_descr = true;
    } else if (key == "fortran_order") {
      if (have_order) r.fail("npy header: duplicate key 'fortran_order'");
      fortran = r.bool_lit();
      have_order = true;
    } else if (key == "shape") {
      if (have_shape) r.fail("npy header: duplicate key 'shape'");
      h.shape = r.tuple_lit();
      have_shape = true;
    } else {
      throw FormatError("npy header: unexpected key '" + key + "'", static_cast<int64_t>(key_pos));
    }
    if (r.peek(',')) { r.expect(',', "','"); continue; }
    if (!r.peek('}')) r.fail("npy header: expected ',' or '}'");
  }
  r.expect('}', "'}'");
  if (!r.at_end()) r.fail("npy header: unexpected text after the dict");
  if (!have_descr || !have_order || !have_shape)
    throw FormatError(std::string("npy header misses key '") + (!have_descr ? "descr" : !have_order ? "fortran_order" : "shape") + "'",
                      static_cast<int64_t>(hstart));
  h.dtype = descr_dtype(descr, hstart);
  if (fortran)
    throw FormatError("npy array is in Fortran order; only C order is supported (save with np.ascontiguousarray)",
                      static_cast<int64_t>(hstart));
  int64_t numel = shape_numel(h.shape);
  size_t esize = dtype_size(h.dtype);
  if (static_cast<uint64_t>(numel) > (uint64_t{1} << 62) / esize) throw FormatError("npy shape " + shape_str(h.shape) + " is too large", static_cast<int64_t>(hstart));
  h.data_offset = hstart + hlen;
  h.data_bytes = static_cast<size_t>(numel) * esize;
  return h;
}

Tensor parse_npy(std::span<const std::byte> bytes, std::shared_ptr<const void> owner, std::string name) {
  NpyHeader h = parse_npy_header(bytes);
  size_t have = bytes.size() - h.data_offset;
  if (have != h.data_bytes)
    throw FormatError("npy data is " + std::to_string(have) + " bytes but shape " + shape_str(h.shape) + " x " +
                      std::string(dtype_name(h.dtype)) + " needs " + std::to_string(h.data_bytes) +
                      (have < h.data_bytes ? " (file truncated)" : " (trailing bytes)"),
                      static_cast<int64_t>(h.data_offset));
  Tensor t;
  t.name = std::move(name);
  t.dtype = h.dtype;
  t.shape = std::move(h.shape);
  t.bytes = bytes.subspan(h.data_offset, h.data_bytes);
  t.owner = std::move(owner);
  return t;
}

Tensor read_npy(const std::string& path) {
  auto f = MappedFile::open(path);
  try {
    return parse_npy(f->bytes(), f, "array");
  } catch (const FormatError& e) {
    throw FormatError("'" + path + "': " + e.what());
  }
}

namespace {
std::string npy_header_for(DType dtype, std::span<const int64_t> shape) {
  std::string dict = "{'descr': '" + std::string(npy_descr(dtype)) + "', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < shape.size(); ++i) dict += std::to_string(shape[i]) + (shape.size() == 1 || i + 1 < shape.size() ? ", " : "");
  if (!shape.empty() && dict.back() == ' ') dict.pop_back();
  dict += "), }";
  // Version 1.0 when the header length fits in a u16, else 2.0; total header padded to a multiple of 64.
  bool v2 = dict.size() + 1 + 12 > 65535;
  size_t prefix = v2 ? 12 : 10;
  size_t total = prefix + dict.size() + 1;
  size_t padded = (total + 63) / 64 * 64;
  dict.append(padded - total, ' ');
  dict += '\n';
  std::string out(kMagic, kMagicLen);
  out += static_cast<char>(v2 ? 2 : 1);
  out += '\0';
  size_t hlen = dict.size();
  for (size_t i = 0; i < (v2 ? 4u : 2u); ++i) out += static_cast<char>((hlen >> (8 * i)) & 0xff);
  return out + dict;
}
}  // namespace

std::string npy_bytes(const Tensor& t) {
  if (t.dtype == DType::BF16) {
    std::vector<float> f(static_cast<size_t>(t.numel()));
    to_f32(DType::BF16, t.bytes.data(), f.data(), f.size());
    std::string out = npy_header_for(DType::F32, t.shape);
    out.append(reinterpret_cast<const char*>(f.data()), f.size() * 4);
    return out;
  }
  std::string out = npy_header_for(t.dtype, t.shape);
  out.append(reinterpret_cast<const char*>(t.bytes.data()), t.bytes.size());
  return out;
}

void write_npy(const std::string& path, const Tensor& t) {
  if (t.dtype == DType::BF16) return write_file_atomic(path, npy_bytes(t));
  std::string header = npy_header_for(t.dtype, t.shape);
  AtomicFileWriter w(path);
  w.write(header.data(), header.size());
  w.write(t.bytes.data(), t.bytes.size());
  w.commit();
}

}  // namespace tsm

// One description of a method's parameters, from which everything else about them is derived: the
// JSON Schema published in /v1/openapi.json and `tensorslm methods`, the parse of a params object
// (unknown keys, types, bounds, choices, defaults) into the method's typed struct P, and P's JSON
// form (what artifacts and resolved jobs store).
// Invariant: a default is written once, as P's default member initializer; the schema's "default"
// is read from a default-constructed P. Fields held in std::optional are absent until given (the
// method's own resolve() fills or clears them by its cross-field rules) and have no schema default.
#pragma once
#include <cmath>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "common/error.h"

namespace tsm {

using json = nlohmann::json;

/// One integer meant for every entry (`scalar`, values has one element) or an explicit list.
struct IntOrList {
  std::vector<int64_t> values;
  bool scalar = false;
  bool operator==(const IntOrList&) const = default;
};

/// Bounds of a number field; `open` excludes the bound itself.
struct NumberBounds {
  double lo = -std::numeric_limits<double>::infinity(), hi = std::numeric_limits<double>::infinity();
  bool lo_open = false, hi_open = false;
};

template <class P>
struct ParamField {
  std::string key;
  json schema;                                  ///< the property's JSON Schema, with "description"
  std::function<void(const json&, P&)> read;    ///< v is not null; throws ParamError(key, why)
  std::function<void(const P&, json&)> write;   ///< sets out[key] when the field holds a value
};

namespace param_detail {

template <class T> struct optional_of { using type = T; static constexpr bool value = false; };
template <class T> struct optional_of<std::optional<T>> { using type = T; static constexpr bool value = true; };

/// The value held by a (possibly optional) member, or nullptr.
template <class M>
const typename optional_of<M>::type* held(const M& m) {
  if constexpr (optional_of<M>::value) return m ? &*m : nullptr;
  else return &m;
}

/// Schema "default" from a default-constructed P, for members that are not optional.
template <class P, class M, class F>
void add_default(json& schema, M P::*member, F&& to_json_value) {
  if constexpr (!optional_of<M>::value) schema["default"] = to_json_value(P{}.*member);
}

inline std::string join(const std::vector<std::string>& v, const char* sep = ", ") {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + v[i];
  return s;
}

inline std::string int_range_text(int64_t lo, int64_t hi) {
  if (hi == std::numeric_limits<int64_t>::max()) return "an integer >= " + std::to_string(lo);
  return "an integer in " + std::to_string(lo) + ".." + std::to_string(hi);
}

inline std::string num_text(double v) {
  json j = v;
  return j.dump();
}

inline std::string bounds_text(const NumberBounds& b) {
  const bool lo = std::isfinite(b.lo), hi = std::isfinite(b.hi);
  if (lo && hi)
    return std::string("a number in ") + (b.lo_open ? "(" : "[") + num_text(b.lo) + ", " + num_text(b.hi) + (b.hi_open ? ")" : "]");
  if (lo) return std::string("a number ") + (b.lo_open ? "> " : ">= ") + num_text(b.lo);
  if (hi) return std::string("a number ") + (b.hi_open ? "< " : "<= ") + num_text(b.hi);
  return "a finite number";
}

inline std::vector<int64_t> read_int_list(const json& v, const std::string& key, int64_t lo) {
  std::vector<int64_t> out;
  for (const auto& e : v) {
    if (!e.is_number_integer() || e.get<int64_t>() < lo)
      throw ParamError(key, "entries must be integers >= " + std::to_string(lo));
    out.push_back(e.get<int64_t>());
  }
  return out;
}

}  // namespace param_detail

// ---- field builders: one per kind of value -------------------------------------------------------

/// An integer in [lo, hi]; member int64_t, int or std::optional<int64_t>.
template <class P, class M>
ParamField<P> integer_param(std::string key, M P::*member, int64_t lo, int64_t hi, std::string help) {
  ParamField<P> f{key, {{"type", "integer"}, {"minimum", lo}, {"description", std::move(help)}}, {}, {}};
  if (hi != std::numeric_limits<int64_t>::max()) f.schema["maximum"] = hi;
  param_detail::add_default(f.schema, member, [](const auto& v) { return json(int64_t(v)); });
  f.read = [key, member, lo, hi](const json& v, P& p) {
    if (!v.is_number_integer() || v.get<int64_t>() < lo || v.get<int64_t>() > hi)
      throw ParamError(key, "must be " + param_detail::int_range_text(lo, hi));
    p.*member = static_cast<typename param_detail::optional_of<M>::type>(v.get<int64_t>());
  };
  f.write = [key, member](const P& p, json& out) {
    if (auto* v = param_detail::held(p.*member)) out[key] = *v;
  };
  return f;
}

/// A finite number within `b`; member double or std::optional<double>.
template <class P, class M>
ParamField<P> number_param(std::string key, M P::*member, NumberBounds b, std::string help) {
  ParamField<P> f{key, {{"type", "number"}, {"description", std::move(help)}}, {}, {}};
  if (std::isfinite(b.lo)) f.schema[b.lo_open ? "exclusiveMinimum" : "minimum"] = b.lo;
  if (std::isfinite(b.hi)) f.schema[b.hi_open ? "exclusiveMaximum" : "maximum"] = b.hi;
  param_detail::add_default(f.schema, member, [](double v) { return json(v); });
  f.read = [key, member, b](const json& v, P& p) {
    const double x = v.is_number() ? v.get<double>() : std::nan("");
    const bool ok = std::isfinite(x) && (b.lo_open ? x > b.lo : x >= b.lo) && (b.hi_open ? x < b.hi : x <= b.hi);
    if (!ok) throw ParamError(key, "must be " + param_detail::bounds_text(b));
    p.*member = x;
  };
  f.write = [key, member](const P& p, json& out) {
    if (auto* v = param_detail::held(p.*member)) out[key] = *v;
  };
  return f;
}

/// One of a fixed set of strings (`aliases` map other spellings to one of them); member
/// std::string or std::optional<std::string>.
template <class P, class M>
ParamField<P> choice_param(std::string key, M P::*member, std::vector<std::string> options, std::string help,
                           std::vector<std::pair<std::string, std::string>> aliases = {}) {
  ParamField<P> f{key, {{"enum", options}, {"description", std::move(help)}}, {}, {}};
  param_detail::add_default(f.schema, member, [](const std::string& v) { return json(v); });
  f.read = [key, member, options, aliases](const json& v, P& p) {
    std::string s = v.is_string() ? v.get<std::string>() : std::string();
    for (const auto& [from, to] : aliases)
      if (s == from) s = to;
    for (const auto& o : options)
      if (v.is_string() && s == o) {
        p.*member = s;
        return;
      }
    throw ParamError(key, "must be one of " + param_detail::join(options));
  };
  f.write = [key, member](const P& p, json& out) {
    if (auto* v = param_detail::held(p.*member)) out[key] = *v;
  };
  return f;
}

/// One of a fixed set of integers; member int or int64_t.
template <class P, class M>
ParamField<P> int_choice_param(std::string key, M P::*member, std::vector<int64_t> options, std::string help) {
  ParamField<P> f{key, {{"enum", options}, {"description", std::move(help)}}, {}, {}};
  param_detail::add_default(f.schema, member, [](const auto& v) { return json(int64_t(v)); });
  f.read = [key, member, options](const json& v, P& p) {
    for (int64_t o : options)
      if (v.is_number_integer() && v.get<int64_t>() == o) {
        p.*member = static_cast<M>(o);
        return;
      }
    std::vector<std::string> names;
    for (int64_t o : options) names.push_back(std::to_string(o));
    throw ParamError(key, "must be one of " + param_detail::join(names));
  };
  f.write = [key, member](const P& p, json& out) { out[key] = p.*member; };
  return f;
}

/// A free-form string the method parses itself (its grammar in `help` and, optionally, a schema
/// "pattern"); member std::string or std::optional<std::string>.
template <class P, class M>
ParamField<P> string_param(std::string key, M P::*member, std::string help, std::string pattern = {}) {
  ParamField<P> f{key, {{"type", "string"}, {"description", std::move(help)}}, {}, {}};
  if (!pattern.empty()) f.schema["pattern"] = pattern;
  param_detail::add_default(f.schema, member, [](const std::string& v) { return json(v); });
  f.read = [key, member](const json& v, P& p) {
    if (!v.is_string()) throw ParamError(key, "must be a string");
    p.*member = v.get<std::string>();
  };
  f.write = [key, member](const P& p, json& out) {
    if (auto* v = param_detail::held(p.*member)) out[key] = *v;
  };
  return f;
}

/// A non-empty list of integers >= lo; member std::optional<std::vector<int64_t>>. With
/// `auto_word`, that string is also accepted and stands for "absent" (the method chooses).
template <class P>
ParamField<P> int_list_param(std::string key, std::optional<std::vector<int64_t>> P::*member, int64_t lo, std::string help,
                             std::string auto_word = {}) {
  const json list = {{"type", "array"}, {"items", {{"type", "integer"}, {"minimum", lo}}}, {"minItems", 1}};
  ParamField<P> f{key, auto_word.empty() ? list : json{{"oneOf", {list, {{"const", auto_word}}}}, {"default", auto_word}}, {}, {}};
  f.schema["description"] = std::move(help);
  f.read = [key, member, lo, auto_word](const json& v, P& p) {
    if (!auto_word.empty() && v.is_string() && v.get<std::string>() == auto_word) {
      p.*member = std::nullopt;
      return;
    }
    if (!v.is_array() || v.empty())
      throw ParamError(key, "must be a non-empty list of integers" + (auto_word.empty() ? std::string() : " or \"" + auto_word + "\""));
    p.*member = param_detail::read_int_list(v, key, lo);
  };
  f.write = [key, member](const P& p, json& out) {
    if (p.*member) out[key] = *(p.*member);
  };
  return f;
}

/// One integer >= lo for every entry, or a list of them; member std::optional<IntOrList>. Written
/// back as given (the method expands a scalar where it resolves the count).
template <class P>
ParamField<P> int_or_list_param(std::string key, std::optional<IntOrList> P::*member, int64_t lo, std::string help) {
  const json item = {{"type", "integer"}, {"minimum", lo}};
  ParamField<P> f{key, {{"oneOf", {item, {{"type", "array"}, {"items", item}}}}, {"description", std::move(help)}}, {}, {}};
  f.read = [key, member, lo](const json& v, P& p) {
    if (v.is_number_integer()) {
      if (v.get<int64_t>() < lo) throw ParamError(key, "must be >= " + std::to_string(lo));
      p.*member = IntOrList{{v.get<int64_t>()}, true};
    } else if (v.is_array()) {
      p.*member = IntOrList{param_detail::read_int_list(v, key, lo), false};
    } else {
      throw ParamError(key, "must be an integer or a list of integers");
    }
  };
  f.write = [key, member](const P& p, json& out) {
    if (!(p.*member)) return;
    const IntOrList& r = *(p.*member);
    if (r.scalar && r.values.size() == 1) out[key] = r.values[0];
    else out[key] = r.values;
  };
  return f;
}

// ---- the description ---------------------------------------------------------------------------------

template <class P>
class ParamSpec {
 public:
  ParamSpec(std::string method, std::vector<ParamField<P>> fields) : method_(std::move(method)), fields_(std::move(fields)) {}

  /// {"type": "object", "additionalProperties": false, "properties": {...}}
  json schema() const {
    json props = json::object();
    for (const auto& f : fields_) props[f.key] = f.schema;
    return {{"type", "object"}, {"additionalProperties", false}, {"properties", props}};
  }

  /// P from a params object (null or {} give the defaults; a null value counts as absent).
  /// Throws ParamError naming the field for anything the description does not allow.
  P parse(const json& params) const {
    if (!params.is_null() && !params.is_object()) throw ParamError("params", "must be a JSON object");
    P p{};
    if (params.is_null()) return p;
    for (auto it = params.begin(); it != params.end(); ++it) {
      const ParamField<P>* f = find(it.key());
      if (!f)
        throw ParamError(it.key(), fields_.empty() ? method_ + " takes no parameters"
                                                   : "unknown parameter for " + method_ + " (known: " + known() + ")");
      if (!it->is_null()) f->read(*it, p);
    }
    return p;
  }

  /// P's JSON form: every field that holds a value.
  json to_json(const P& p) const {
    json out = json::object();
    for (const auto& f : fields_) f.write(p, out);
    return out;
  }

  /// "a, b, c": the parameter names in description order.
  std::string known() const {
    std::vector<std::string> k;
    for (const auto& f : fields_) k.push_back(f.key);
    return param_detail::join(k);
  }

 private:
  const ParamField<P>* find(const std::string& key) const {
    for (const auto& f : fields_)
      if (f.key == key) return &f;
    return nullptr;
  }
  std::string method_;
  std::vector<ParamField<P>> fields_;
};

}  // namespace tsm

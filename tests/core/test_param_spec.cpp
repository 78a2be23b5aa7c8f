// ParamSpec (methods/param_spec.h): one description gives the schema, the parse and the JSON form;
// and every method in the table publishes exactly the parameters its resolve() accepts.
#include <gtest/gtest.h>

#include "methods/method_table.h"
#include "methods/param_spec.h"
#include "support/param_error.h"

namespace tsm {
namespace {

struct Demo {
  int64_t rounds = 3;
  std::optional<double> eps;
  std::string mode = "fast";
  int bits = 16;
  std::optional<std::vector<int64_t>> modes;
  std::optional<IntOrList> ranks;
  std::optional<std::string> label;
};

const ParamSpec<Demo>& demo() {
  static const ParamSpec<Demo> spec("demo", {
      integer_param("rounds", &Demo::rounds, 0, 50, "rounds"),
      number_param("eps", &Demo::eps, {0, 1, false, true}, "tolerance"),
      choice_param("mode", &Demo::mode, {"fast", "slow"}, "speed", {{"quick", "fast"}}),
      int_choice_param("bits", &Demo::bits, {0, 16, 32}, "width"),
      int_list_param("modes", &Demo::modes, 1, "modes", "auto"),
      int_or_list_param("ranks", &Demo::ranks, 1, "ranks"),
      string_param("label", &Demo::label, "free text", "^[a-z]+$"),
  });
  return spec;
}

std::string field_of(const std::function<void()>& f) { return test::param_error_field(f); }

TEST(ParamSpec, SchemaComesFromTheDescriptionAndTheStructDefaults) {
  const json s = demo().schema();
  EXPECT_EQ(s["type"], "object");
  EXPECT_EQ(s["additionalProperties"], false);
  const json& p = s["properties"];
  EXPECT_EQ(p.size(), 7u);
  EXPECT_EQ(p["rounds"]["default"], 3);
  EXPECT_EQ(p["rounds"]["minimum"], 0);
  EXPECT_EQ(p["rounds"]["maximum"], 50);
  EXPECT_FALSE(p["eps"].contains("default"));  // optional: no default
  EXPECT_EQ(p["eps"]["exclusiveMaximum"], 1.0);
  EXPECT_EQ(p["mode"]["enum"], json({"fast", "slow"}));
  EXPECT_EQ(p["mode"]["default"], "fast");
  EXPECT_EQ(p["bits"]["enum"], json({0, 16, 32}));
  EXPECT_EQ(p["modes"]["default"], "auto");
  EXPECT_EQ(p["label"]["pattern"], "^[a-z]+$");
  for (const auto& [k, v] : p.items()) EXPECT_FALSE(v.value("description", "").empty()) << k;
}

TEST(ParamSpec, ParseFillsDefaultsAndRoundTrips) {
  const Demo d = demo().parse(nullptr);
  EXPECT_EQ(d.rounds, 3);
  EXPECT_FALSE(d.eps);
  EXPECT_EQ(demo().parse(json::object()).mode, "fast");
  const json in = {{"rounds", 7}, {"eps", 0.25}, {"mode", "quick"}, {"bits", 32}, {"modes", {2, 3}}, {"ranks", 4}, {"label", "x"}};
  const Demo p = demo().parse(in);
  EXPECT_EQ(p.mode, "fast");  // alias
  ASSERT_TRUE(p.ranks);
  EXPECT_TRUE(p.ranks->scalar);
  const json out = demo().to_json(p);
  EXPECT_EQ(out["mode"], "fast");
  EXPECT_EQ(out["ranks"], 4);
  EXPECT_EQ(out["modes"], json({2, 3}));
  EXPECT_EQ(demo().to_json(demo().parse(out)), out);
  // optional fields stay absent; null counts as absent; "auto" clears a list
  EXPECT_FALSE(demo().to_json(d).contains("eps"));
  EXPECT_FALSE(demo().parse(json{{"eps", nullptr}}).eps);
  EXPECT_FALSE(demo().parse(json{{"modes", "auto"}}).modes);
  EXPECT_EQ(demo().parse(json{{"ranks", {1, 2}}}).ranks->values, (std::vector<int64_t>{1, 2}));
}

TEST(ParamSpec, EveryViolationNamesItsField) {
  auto bad = [](json j) { return field_of([&] { demo().parse(j); }); };
  EXPECT_EQ(field_of([] { demo().parse(json::array()); }), "params");
  EXPECT_EQ(bad({{"nope", 1}}), "nope");
  EXPECT_EQ(bad({{"rounds", 51}}), "rounds");
  EXPECT_EQ(bad({{"rounds", 2.5}}), "rounds");
  EXPECT_EQ(bad({{"rounds", "3"}}), "rounds");
  EXPECT_EQ(bad({{"eps", 1.0}}), "eps");  // open upper bound
  EXPECT_EQ(bad({{"eps", -0.1}}), "eps");
  EXPECT_EQ(bad({{"eps", "0.1"}}), "eps");
  EXPECT_EQ(bad({{"mode", "medium"}}), "mode");
  EXPECT_EQ(bad({{"mode", 1}}), "mode");
  EXPECT_EQ(bad({{"bits", 8}}), "bits");
  EXPECT_EQ(bad({{"modes", json::array()}}), "modes");
  EXPECT_EQ(bad({{"modes", {1, 0}}}), "modes");
  EXPECT_EQ(bad({{"modes", "manual"}}), "modes");
  EXPECT_EQ(bad({{"ranks", 0}}), "ranks");
  EXPECT_EQ(bad({{"ranks", {1, "2"}}}), "ranks");
  EXPECT_EQ(bad({{"label", 5}}), "label");
  EXPECT_EQ(bad({{"rounds", 5}}), "");
  EXPECT_EQ(field_of([] { ParamSpec<Demo>("none", {}).parse(json{{"x", 1}}); }), "x");
}

// For every method: the schema lists exactly what resolve() accepts; resolve() is idempotent (a
// resolved job re-resolves to itself, which is what the worker relies on); unknown keys are refused.
TEST(ParamSpec, EveryMethodsSchemaMatchesItsResolve) {
  for (const Codec* c : all_codecs()) {
    SCOPED_TRACE(std::string(c->name()));
    const json schema = c->param_schema();
    ASSERT_EQ(schema["additionalProperties"], false);
    const int64_t rows = 96, cols = 64;
    const json r = c->resolve(json::object(), rows, cols);
    EXPECT_EQ(c->resolve(r, rows, cols), r);
    for (const auto& [k, v] : r.items()) EXPECT_TRUE(schema["properties"].contains(k)) << k << " resolved but not published";
    for (const auto& [k, prop] : schema["properties"].items()) {
      EXPECT_FALSE(prop.value("description", "").empty()) << k;
      if (prop.contains("default")) EXPECT_NO_THROW(c->resolve(json{{k, prop["default"]}}, rows, cols)) << k;
    }
    EXPECT_EQ(field_of([&] { c->resolve(json{{"no_such_param", 1}}, rows, cols); }), "no_such_param");
  }
}

}  // namespace
}  // namespace tsm

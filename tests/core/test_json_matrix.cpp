// The streaming reader of JSON number arrays: shapes it accepts, every structure it refuses, and
// hostile inputs (deep nesting, huge counts) refused at once without building a document.
#include <gtest/gtest.h>

#include "formats/json_matrix.h"

using namespace tsm;

TEST(JsonMatrix, FlatAndNested) {
  auto a = read_json_matrix("[1, 2.5, -3e2]", 100);
  EXPECT_TRUE(a.flat);
  EXPECT_EQ(a.rows, 1);
  EXPECT_EQ(a.cols, 3);
  EXPECT_EQ(a.values, (std::vector<float>{1.f, 2.5f, -300.f}));
  auto b = read_json_matrix(" [[1, 2], [3, 4], [5, 6]] ", 100);
  EXPECT_FALSE(b.flat);
  EXPECT_EQ(b.rows, 3);
  EXPECT_EQ(b.cols, 2);
  EXPECT_EQ(b.values, (std::vector<float>{1, 2, 3, 4, 5, 6}));
}

TEST(JsonMatrix, RefusesEveryOtherStructure) {
  auto row_of = [](const char* text) -> int64_t {
    try {
      read_json_matrix(text, 100);
    } catch (const JsonSyntaxError&) {
      return -2;
    } catch (const FormatError& e) {
      for (const auto& [k, v] : e.details())
        if (k == "row") return std::get<int64_t>(v);
      return -1;
    }
    return -3;  // accepted
  };
  EXPECT_EQ(row_of("[[1, 2], [3]]"), 1);        // ragged
  EXPECT_EQ(row_of("[[1, 2], []]"), 1);         // empty row
  EXPECT_EQ(row_of("[[1, \"x\"]]"), 0);         // string
  EXPECT_EQ(row_of("[[1, null]]"), 0);
  EXPECT_EQ(row_of("[1, [2]]"), -1);            // numbers then rows
  EXPECT_EQ(row_of("[[1], 2]"), -1);            // rows then numbers
  EXPECT_EQ(row_of("[[[1]]]"), -1);             // too deep
  EXPECT_EQ(row_of("{\"a\": 1}"), -1);          // object
  EXPECT_EQ(row_of("[]"), -1);                  // empty
  EXPECT_EQ(row_of("3"), -1);                   // not an array
  EXPECT_EQ(row_of("[[1, 2],"), -2);            // truncated: a syntax error
  EXPECT_EQ(row_of("[1, 2] x"), -2);
  EXPECT_THROW(read_json_matrix("[1, 2, 3, 4]", 3), FormatError);  // more values than allowed
}

TEST(JsonMatrix, SyntaxErrorsCarryTheOffset) {
  try {
    read_json_matrix("[[1, 2], [3, 4x]]", 100);
    FAIL();
  } catch (const JsonSyntaxError& e) {
    EXPECT_EQ(e.offset(), 14);
  }
}

// 60 MiB of "[" used to become a 4.7 GB document: the reader refuses it at the third bracket.
TEST(JsonMatrix, DeepNestingIsRefusedAtOnce) {
  const std::string deep(60u << 20, '[');
  EXPECT_THROW(read_json_matrix(deep, 1000), FormatError);
}

// evj::ward_segments unit tests. tests/test_native_text.py compares hundreds of random cases (ties
// included) against edge_vljepa/streaming/policies.py ward_segments (sklearn).
#include "ward.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "error.h"

namespace {

using Labels = std::vector<int>;

TEST(Ward, TwoObviousScenes) {
  const std::vector<float> x = {0, 0, 0.1f, 0, 0, 0.1f, 5, 5, 5.1f, 5, 5, 5.1f, 5, 5};
  EXPECT_EQ(evj::ward_segments(x, 7, 2, 2), (Labels{0, 0, 0, 1, 1, 1, 1}));
  EXPECT_EQ(evj::ward_segments(x, 7, 2, 1), (Labels{0, 0, 0, 0, 0, 0, 0}));
  const auto runs = evj::ward_runs(x, 7, 2, 2);
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0], std::make_pair(0, 2));
  EXPECT_EQ(runs[1], std::make_pair(3, 6));
}

TEST(Ward, ContiguityBeatsSimilarity) {
  // rows 0 and 2 are equal but not neighbours: only neighbours may merge
  EXPECT_EQ(evj::ward_segments({0, 10, 0}, 3, 1, 2), (Labels{0, 0, 1}));
}

TEST(Ward, TiesFollowSklearnTupleOrder) {
  // All rows equal: every inertia is 0 and the smallest (inertia, i, j) tuple wins. sklearn merges
  // (1, 0) into node 5, then skips the stale (2, 1) and merges (3, 2) into node 6; then (6, 4).
  const std::vector<float> x(5, 1.0f);
  EXPECT_EQ(evj::ward_segments(x, 5, 1, 3), (Labels{0, 0, 1, 1, 2}));
  EXPECT_EQ(evj::ward_segments(x, 5, 1, 2), (Labels{0, 0, 1, 1, 1}));
}

TEST(Ward, OneSegmentPerRowWhenKAtLeastN) {
  const std::vector<float> x = {1, 2, 3};
  EXPECT_EQ(evj::ward_segments(x, 3, 1, 3), (Labels{0, 1, 2}));
  EXPECT_EQ(evj::ward_segments(x, 3, 1, 10), (Labels{0, 1, 2}));
  EXPECT_EQ(evj::ward_segments({}, 0, 4, 1), Labels{});
  EXPECT_EQ(evj::ward_segments({7}, 1, 1, 1), (Labels{0}));
}

TEST(Ward, BadInputThrows) {
  EXPECT_THROW(evj::ward_segments({1, 2, 3}, 3, 1, 0), evj::Error);
  EXPECT_THROW(evj::ward_segments({1, 2, 3}, 2, 2, 1), evj::Error);
  EXPECT_THROW(evj::ward_segments({1, std::numeric_limits<float>::quiet_NaN()}, 2, 1, 1), evj::Error);
  EXPECT_THROW(evj::ward_segments({1, INFINITY}, 2, 1, 1), evj::Error);
}

}  // namespace

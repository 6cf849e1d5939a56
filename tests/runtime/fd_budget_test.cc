// The descriptor budget: the instances an open-file limit leaves room for.
#include "runtime/fd_budget.h"

#include <sys/resource.h>

#include <catch2/catch.hpp>
#include <string>

#include "runtime/log_files.h"

namespace micro::runtime {
namespace {

using Catch::Matchers::Contains;

TEST_CASE("a quarter of the open-file limit, at least 256, is kept for the daemon",
          "[runtime][fd_budget]") {
  const FdBudget small = BudgetFor(1024);
  CHECK(small.reserved == 256);
  CHECK(small.instances == (1024 - 256) / kFdsPerInstance);
  const FdBudget large = BudgetFor(20000);
  CHECK(large.reserved == 5000);
  CHECK(large.instances == 7500);
  CHECK(large.open_log_files <= large.reserved);
  const FdBudget tiny = BudgetFor(100);
  CHECK(tiny.reserved == 100);
  CHECK(tiny.instances == 0);
}

TEST_CASE("a deploy past the instance budget is refused with the numbers and the limit to raise",
          "[runtime][fd_budget]") {
  const FdBudget budget = BudgetFor(1024);
  CHECK(CheckInstanceBudget(budget, 0, budget.instances).ok());
  const Status refused = CheckInstanceBudget(budget, 380, budget.instances + 1);
  REQUIRE(absl::IsResourceExhausted(refused));
  const std::string message(refused.message());
  CHECK_THAT(message, Contains("ulimit -n"));
  CHECK_THAT(message, Contains("LimitNOFILE="));
  CHECK_THAT(message, Contains("1024"));
  CHECK_THAT(message, Contains(std::to_string(budget.instances)));
  // Shrinking or keeping what is deployed (after the limit was lowered) is never refused.
  CHECK(CheckInstanceBudget(budget, 1000, 900).ok());
}

TEST_CASE("the soft open-file limit is raised to the hard one", "[runtime][fd_budget]") {
  struct rlimit before {};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &before) == 0);
  if (before.rlim_max <= 300) {
    WARN("hard open-file limit too low to lower the soft one below it");
    return;
  }
  struct rlimit lowered = before;
  lowered.rlim_cur = 256;
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &lowered) == 0);
  const FdBudget budget = RaiseOpenFileLimit();
  struct rlimit after {};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &after) == 0);
  CHECK(after.rlim_cur == before.rlim_max);
  if (before.rlim_max != RLIM_INFINITY) CHECK(budget.limit == before.rlim_max);
}

TEST_CASE("the open log file budget hands out at most its size", "[runtime][fd_budget]") {
  OpenFileBudget budget(2);
  CHECK(budget.TryAcquire());
  CHECK(budget.TryAcquire());
  CHECK_FALSE(budget.TryAcquire());
  budget.Release();
  CHECK(budget.TryAcquire());
  CHECK(budget.open() == 2);
}

}  // namespace
}  // namespace micro::runtime

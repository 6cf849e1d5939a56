#include "runtime/fd_budget.h"

#include <fmt/format.h>
#include <sys/resource.h>

#include <algorithm>

namespace micro::runtime {

FdBudget BudgetFor(uint64_t limit) {
  FdBudget budget;
  budget.limit = limit;
  budget.reserved = std::min(limit, std::max(kMinReservedFds, limit / kReservedFdsDivisor));
  budget.open_log_files = std::min(kMaxOpenLogFiles, budget.reserved / 4);
  budget.instances = (limit - budget.reserved) / kFdsPerInstance;
  return budget;
}

FdBudget RaiseOpenFileLimit() {
  struct rlimit limit {};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return BudgetFor(1024);
  if (limit.rlim_cur < limit.rlim_max) {
    struct rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  const uint64_t soft =
      limit.rlim_cur == RLIM_INFINITY ? uint64_t{1} << 20 : static_cast<uint64_t>(limit.rlim_cur);
  return BudgetFor(soft);
}

Status CheckInstanceBudget(const FdBudget& budget, uint64_t running, uint64_t wanted) {
  if (wanted <= budget.instances || wanted <= running) return absl::OkStatus();
  return absl::ResourceExhaustedError(fmt::format(
      "this would make {} instances, and the daemon's open-file limit of {} leaves room for {} "
      "({} per instance, {} kept for the daemon itself; {} are deployed now): raise the limit "
      "('ulimit -n' before starting the daemon, or LimitNOFILE= in its systemd unit) and "
      "restart the daemon, or deploy fewer instances",
      wanted, budget.limit, budget.instances, kFdsPerInstance, budget.reserved, running));
}

}  // namespace micro::runtime

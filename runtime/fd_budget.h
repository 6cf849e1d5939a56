#pragma once

#include <cstddef>
#include <cstdint>

#include "core/status.h"

namespace micro::runtime {

// Every supervised instance holds descriptors of the daemon's for as long as it runs (its
// stdout and stderr pipes). Past the process's open-file limit, accept() fails and the daemon
// answers no one; so a share of the limit is kept for the control plane (gRPC connections,
// RocksDB, log files, health probes, builds) and the rest bounds the instances.

// Descriptors each running instance holds: the read ends of its stdout and stderr pipes.
inline constexpr uint64_t kFdsPerInstance = 2;
// Kept for the control plane: a quarter of the limit, at least this many.
inline constexpr uint64_t kMinReservedFds = 256;
inline constexpr uint64_t kReservedFdsDivisor = 4;
// Log files kept open at once (a share of the reserve); past it an append opens and closes.
inline constexpr uint64_t kMaxOpenLogFiles = 1024;

struct FdBudget {
  uint64_t limit = 0;           // the soft RLIMIT_NOFILE
  uint64_t reserved = 0;        // kept for the control plane
  uint64_t open_log_files = 0;  // of the reserve: log files held open
  uint64_t instances = 0;       // supervised instances that fit in the rest
};

// The budget for an open-file limit of `limit`.
FdBudget BudgetFor(uint64_t limit);

// Raises the soft RLIMIT_NOFILE to the hard limit (the default soft limit, often 1024, is far
// below what a supervisor of many instances needs) and returns the budget for the limit in
// force afterwards. Raising may fail (the budget is then for the old limit).
FdBudget RaiseOpenFileLimit();

// RESOURCE_EXHAUSTED for a deploy that would bring the instances to `wanted`, beyond the
// budget: it names the numbers and the limit to raise.
[[nodiscard]] Status CheckInstanceBudget(const FdBudget& budget, uint64_t running, uint64_t wanted);

}  // namespace micro::runtime

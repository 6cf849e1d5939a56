#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/desired_state.h"

namespace micro::runtime {

// Deployed services in this process's memory: nothing survives a restart. Thread-safe.
class MemoryDesiredState final : public DesiredState {
 public:
  Status Save(const DeployedService& service) override;
  Status Remove(const std::string& ns, const std::string& name,
                const std::string& version) override;
  Result<std::vector<DeployedService>> LoadAll() override;

 private:
  std::mutex mu_;
  std::map<std::string, DeployedService> services_;  // by NAMESPACE/NAME/VERSION
};

}  // namespace micro::runtime

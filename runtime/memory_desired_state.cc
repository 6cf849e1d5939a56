#include "runtime/memory_desired_state.h"

namespace micro::runtime {
namespace {

std::string KeyOf(const std::string& ns, const std::string& name, const std::string& version) {
  return ns + "/" + name + "/" + version;
}

}  // namespace

Status MemoryDesiredState::Save(const DeployedService& service) {
  std::lock_guard lock(mu_);
  services_[KeyOf(service.spec.ns, service.spec.name, service.spec.version)] = service;
  return absl::OkStatus();
}

Status MemoryDesiredState::Remove(const std::string& ns, const std::string& name,
                                  const std::string& version) {
  std::lock_guard lock(mu_);
  services_.erase(KeyOf(ns, name, version));
  return absl::OkStatus();
}

Result<std::vector<DeployedService>> MemoryDesiredState::LoadAll() {
  std::lock_guard lock(mu_);
  std::vector<DeployedService> out;
  for (const auto& [key, service] : services_) out.push_back(service);
  return out;
}

}  // namespace micro::runtime

#include "core/address.h"

namespace micro {

std::string HostOf(const std::string& address) { return address.substr(0, address.rfind(':')); }

bool IsLoopbackAddress(const std::string& address) {
  const std::string host = HostOf(address);
  if (host == "localhost" || host == "[::1]") return true;
  // 127.0.0.0/8: four dotted decimal parts, the first 127.
  if (host.rfind("127.", 0) != 0) return false;
  int parts = 2;  // "127" and the part after its dot
  for (size_t i = 4; i < host.size(); ++i) {
    if (host[i] == '.') {
      if (host[i - 1] == '.') return false;
      ++parts;
    } else if (host[i] < '0' || host[i] > '9') {
      return false;
    }
  }
  return parts == 4 && host.back() != '.';
}

}  // namespace micro

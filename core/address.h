#pragma once

#include <string>

namespace micro {

// The host of HOST:PORT (with its brackets if IPv6).
std::string HostOf(const std::string& address);

// Whether the host of a valid HOST:PORT is a loopback address: 127.0.0.0/8, [::1] or localhost.
bool IsLoopbackAddress(const std::string& address);

}  // namespace micro

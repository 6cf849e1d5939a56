#pragma once

namespace micro {

// The version of this build, from the CMake project version.
const char* Version();

}  // namespace micro

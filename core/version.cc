#include "core/version.h"

namespace micro {

const char* Version() { return MICRO_VERSION_STRING; }

}  // namespace micro

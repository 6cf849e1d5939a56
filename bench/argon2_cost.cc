// The cost of one Argon2id verification as the auth service does it (libsodium's
// crypto_pwhash_str_verify with services/auth/crypto.h's limits: t = 2, m = 19 MiB), for
// bench/auth.sh.
//
//   micro-bench-argon2 [RUNS]  prints {"runs": N, "p50_ms": ..., "p99_ms": ..., "cpu_ms_each": ...}
#include <sodium.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

int main(int argc, char** argv) {
  const int runs = argc > 1 ? std::max(1, std::atoi(argv[1])) : 20;
  if (sodium_init() < 0) return 1;
  char hash[crypto_pwhash_STRBYTES];
  const char secret[] = "a-secret-of-32-characters-long!!";
  if (crypto_pwhash_str(hash, secret, sizeof(secret) - 1, 2, size_t{19} << 20) != 0) {
    return 1;
  }
  std::vector<double> ms;
  timespec cpu_start{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu_start);
  for (int i = 0; i < runs; ++i) {
    const auto start = std::chrono::steady_clock::now();
    if (crypto_pwhash_str_verify(hash, secret, sizeof(secret) - 1) != 0) return 1;
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                     .count());
  }
  timespec cpu_end{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu_end);
  const double cpu_ms =
      (cpu_end.tv_sec - cpu_start.tv_sec) * 1e3 + (cpu_end.tv_nsec - cpu_start.tv_nsec) / 1e6;
  std::sort(ms.begin(), ms.end());
  std::printf("{\"runs\": %d, \"p50_ms\": %.2f, \"p99_ms\": %.2f, \"cpu_ms_each\": %.2f}\n", runs,
              ms[ms.size() / 2], ms[std::min(ms.size() - 1, ms.size() * 99 / 100)], cpu_ms / runs);
  return 0;
}

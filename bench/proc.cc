// micro-bench-proc: the program bench/runtime.sh supervises, with micro's runtime and with
// supervisord alike. Plain C++ and libc, no dependencies, so that both supervisors start the same
// small binary.
//
//   micro-bench-proc crash FILE DELAY_MS  appends "start <ns> <pid>", sleeps DELAY_MS, appends
//                                         "exit <ns> <pid>" and exits 1
//   micro-bench-proc mark FILE            appends "start <ns> <pid>", then idles
//   micro-bench-proc idle                 sleeps until a signal ends it (pause())
//
// <ns> is CLOCK_REALTIME in nanoseconds, so that the script can compare it with `date +%s%N`.
// Each mark is one write(2) to a file opened with O_APPEND: lines from many processes never mix.

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

namespace {

long long NowNs() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

bool Mark(const char* file, const char* what) {
  char line[96];
  const int n =
      snprintf(line, sizeof line, "%s %lld %d\n", what, NowNs(), static_cast<int>(getpid()));
  const int fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    perror(file);
    return false;
  }
  const bool ok = write(fd, line, static_cast<size_t>(n)) == n;
  close(fd);
  return ok;
}

[[noreturn]] void Idle() {
  // The default action of SIGTERM/SIGINT ends the process; pause() only returns for a handled
  // signal, of which there is none.
  for (;;) pause();
}

int Usage() {
  fputs(
      "usage: micro-bench-proc crash FILE DELAY_MS | mark FILE | idle\n"
      "  crash: append \"start <ns> <pid>\" to FILE, sleep DELAY_MS, append \"exit <ns> <pid>\",\n"
      "         exit 1\n"
      "  mark:  append \"start <ns> <pid>\" to FILE, then sleep until signalled\n"
      "  idle:  sleep until signalled\n",
      stderr);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && strcmp(argv[1], "idle") == 0) Idle();
  if (argc == 3 && strcmp(argv[1], "mark") == 0) {
    if (!Mark(argv[2], "start")) return 1;
    Idle();
  }
  if (argc == 4 && strcmp(argv[1], "crash") == 0) {
    char* end = nullptr;
    const long delay_ms = strtol(argv[3], &end, 10);
    if (*argv[3] == '\0' || *end != '\0' || delay_ms < 0 || delay_ms > 3600000) return Usage();
    if (!Mark(argv[2], "start")) return 1;
    timespec delay{delay_ms / 1000, (delay_ms % 1000) * 1000000L};
    while (nanosleep(&delay, &delay) != 0) {
    }
    Mark(argv[2], "exit");
    return 1;
  }
  return Usage();
}

/* The NATS side of bench/broker.sh: one publisher and N subscribers of one subject on
 * nats-server, through Debian's libnats (the NATS C client), each on a connection of its own.
 *
 *   micro-bench-nats-client URL SUBJECT SUBSCRIBERS SIZE MESSAGES RATE
 *
 * Publishes MESSAGES messages of SIZE bytes (at least 16): the first 8 bytes are the send time
 * (CLOCK_MONOTONIC, ns), the next 8 the sequence number. RATE 0 publishes as fast as the client
 * can; RATE > 0 paces the messages at RATE per second. Every subscriber notes the latency of each
 * message (receive time - send time). Prints one line:
 *   msgs_per_s=N p50_us=N p99_us=N received=N dropped=N elapsed_ms=N
 * msgs_per_s is the messages that reached each subscriber per second (the average over the
 * subscribers) from the first publish to the last receive. */
#include <nats/nats.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

typedef struct {
  natsConnection *conn;
  natsSubscription *sub;
  int64_t *latencies; /* ns, one per message received */
  volatile int64_t received;
  volatile int64_t last_ns;
  int64_t capacity;
} subscriber;

static void on_message(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure) {
  (void)nc;
  (void)sub;
  subscriber *s = closure;
  const int64_t now = now_ns();
  int64_t sent = 0;
  if (natsMsg_GetDataLength(msg) >= 8) memcpy(&sent, natsMsg_GetData(msg), 8);
  if (s->received < s->capacity) s->latencies[s->received] = now - sent;
  s->last_ns = now;
  __atomic_add_fetch(&s->received, 1, __ATOMIC_RELEASE);
  natsMsg_Destroy(msg);
}

static int compare(const void *a, const void *b) {
  const int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static void check(natsStatus s, const char *what) {
  if (s != NATS_OK) {
    fprintf(stderr, "micro-bench-nats-client: %s: %s\n", what, natsStatus_GetText(s));
    exit(1);
  }
}

int main(int argc, char **argv) {
  if (argc != 7) {
    fprintf(stderr, "usage: %s URL SUBJECT SUBSCRIBERS SIZE MESSAGES RATE\n", argv[0]);
    return 2;
  }
  const char *url = argv[1], *subject = argv[2];
  const int subscribers = atoi(argv[3]);
  int size = atoi(argv[4]);
  const int64_t messages = atoll(argv[5]);
  const double rate = atof(argv[6]);
  if (size < 16) size = 16;

  subscriber *subs = calloc((size_t)subscribers, sizeof(subscriber));
  for (int i = 0; i < subscribers; ++i) {
    subs[i].capacity = messages;
    subs[i].latencies = malloc((size_t)messages * sizeof(int64_t));
    check(natsConnection_ConnectTo(&subs[i].conn, url), "connect (subscriber)");
    check(natsConnection_Subscribe(&subs[i].sub, subs[i].conn, subject, on_message, &subs[i]),
          "subscribe");
    check(natsConnection_Flush(subs[i].conn), "flush (subscriber)");
  }
  natsConnection *pub = NULL;
  check(natsConnection_ConnectTo(&pub, url), "connect (publisher)");

  char *payload = calloc(1, (size_t)size);
  const int64_t start = now_ns();
  for (int64_t n = 0; n < messages; ++n) {
    if (rate > 0) {
      const int64_t due = start + (int64_t)((double)n * 1e9 / rate);
      while (now_ns() < due) {
      }
    }
    const int64_t sent = now_ns();
    memcpy(payload, &sent, 8);
    memcpy(payload + 8, &n, 8);
    check(natsConnection_Publish(pub, subject, payload, size), "publish");
  }
  check(natsConnection_Flush(pub), "flush (publisher)");

  /* Until every subscriber has everything, or none made progress for 2 s (drops). */
  int64_t total = -1, idle_since = now_ns();
  for (;;) {
    int64_t sum = 0;
    for (int i = 0; i < subscribers; ++i) sum += __atomic_load_n(&subs[i].received, __ATOMIC_ACQUIRE);
    if (sum == messages * subscribers) break;
    if (sum != total) {
      total = sum;
      idle_since = now_ns();
    } else if (now_ns() - idle_since > 2000000000LL) {
      break;
    }
    nats_Sleep(1);
  }

  int64_t received = 0, last = start, dropped = 0;
  for (int i = 0; i < subscribers; ++i) {
    int64_t d = 0;
    natsSubscription_GetDropped(subs[i].sub, &d);
    dropped += d;
    received += subs[i].received;
    if (subs[i].last_ns > last) last = subs[i].last_ns;
  }
  int64_t *all = malloc((size_t)(received > 0 ? received : 1) * sizeof(int64_t));
  int64_t k = 0;
  for (int i = 0; i < subscribers; ++i) {
    const int64_t n = subs[i].received < subs[i].capacity ? subs[i].received : subs[i].capacity;
    memcpy(all + k, subs[i].latencies, (size_t)n * sizeof(int64_t));
    k += n;
  }
  qsort(all, (size_t)k, sizeof(int64_t), compare);
  const double elapsed_s = (double)(last - start) / 1e9;
  printf("msgs_per_s=%.0f p50_us=%.0f p99_us=%.0f received=%lld dropped=%lld elapsed_ms=%.0f\n",
         elapsed_s > 0 ? (double)received / subscribers / elapsed_s : 0.0,
         k ? (double)all[k / 2] / 1e3 : 0.0, k ? (double)all[k * 99 / 100] / 1e3 : 0.0,
         (long long)received, (long long)dropped, elapsed_s * 1e3);

  for (int i = 0; i < subscribers; ++i) {
    natsSubscription_Unsubscribe(subs[i].sub);
    natsSubscription_Destroy(subs[i].sub);
    natsConnection_Destroy(subs[i].conn);
    free(subs[i].latencies);
  }
  natsConnection_Destroy(pub);
  nats_Close();
  free(all);
  free(payload);
  free(subs);
  return 0;
}

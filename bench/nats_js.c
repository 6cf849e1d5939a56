/* JetStream side of bench/events.sh, on Debian's libnats (nats.c):
 *
 *   nats-js publish URL COUNT SIZE MAX_PENDING   js_PublishAsync of COUNT messages of SIZE bytes
 *                                                to subject "bench" of stream BENCH (file
 *                                                storage, created if missing), at most
 *                                                MAX_PENDING unacknowledged
 *   nats-js consume URL COUNT DURABLE BATCH      a pull consumer DURABLE from the first message,
 *                                                fetching BATCH at a time, acking each message
 *
 * Prints one JSON object: {"messages": N, "seconds": S, "per_second": R}.
 * Built by bench/events.sh: cc nats_js.c $(pkg-config --cflags --libs libnats).
 */
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int fail(const char *what, natsStatus s) {
  fprintf(stderr, "nats-js: %s: %s\n", what, natsStatus_GetText(s));
  nats_PrintLastErrorStack(stderr);
  return 1;
}

static int publish(jsCtx *js, long count, int size) {
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = "BENCH";
  const char *subjects[] = {"bench"};
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  cfg.Storage = js_FileStorage;
  jsErrCode jerr = 0;
  jsStreamInfo *si = NULL;
  natsStatus s = js_AddStream(&si, js, &cfg, NULL, &jerr);
  if (s != NATS_OK && jerr != JSStreamNameExistErr) return fail("add stream", s);
  if (si != NULL) jsStreamInfo_Destroy(si);
  char *data = malloc((size_t)size);
  memset(data, 'p', (size_t)size);
  const double start = now_seconds();
  for (long i = 0; i < count; ++i) {
    s = js_PublishAsync(js, "bench", data, size, NULL);
    if (s != NATS_OK) return fail("publish", s);
  }
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = 60000;
  s = js_PublishAsyncComplete(js, &po);
  if (s != NATS_OK) return fail("publish complete", s);
  const double seconds = now_seconds() - start;
  printf("{\"messages\": %ld, \"seconds\": %.3f, \"per_second\": %.0f}\n", count, seconds,
         count / seconds);
  free(data);
  return 0;
}

static int consume(jsCtx *js, long count, const char *durable, int batch) {
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = "BENCH";
  so.Config.AckPolicy = js_AckExplicit;
  so.Config.DeliverPolicy = js_DeliverAll;
  so.Config.MaxAckPending = batch * 4;
  jsErrCode jerr = 0;
  natsSubscription *sub = NULL;
  natsStatus s = js_PullSubscribe(&sub, js, "bench", durable, NULL, &so, &jerr);
  if (s != NATS_OK) return fail("pull subscribe", s);
  long received = 0;
  double start = 0;
  while (received < count) {
    natsMsgList list = {0};
    s = natsSubscription_Fetch(&list, sub, batch, 5000, &jerr);
    if (s != NATS_OK) return fail("fetch", s);
    if (received == 0) start = now_seconds();
    for (int i = 0; i < list.Count; ++i) {
      natsMsg_Ack(list.Msgs[i], NULL);
      ++received;
    }
    natsMsgList_Destroy(&list);
  }
  const double seconds = now_seconds() - start;
  printf("{\"messages\": %ld, \"seconds\": %.3f, \"per_second\": %.0f}\n", received, seconds,
         received / seconds);
  natsSubscription_Destroy(sub);
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 6 || (strcmp(argv[1], "publish") != 0 && strcmp(argv[1], "consume") != 0)) {
    fprintf(stderr, "usage: nats-js publish URL COUNT SIZE MAX_PENDING | consume URL COUNT "
                    "DURABLE BATCH\n");
    return 2;
  }
  natsConnection *nc = NULL;
  natsStatus s = natsConnection_ConnectTo(&nc, argv[2]);
  if (s != NATS_OK) return fail("connect", s);
  jsOptions jo;
  jsOptions_Init(&jo);
  if (strcmp(argv[1], "publish") == 0) jo.PublishAsync.MaxPending = atol(argv[5]);
  jsCtx *js = NULL;
  s = natsConnection_JetStream(&js, nc, &jo);
  if (s != NATS_OK) return fail("jetstream", s);
  int rc = strcmp(argv[1], "publish") == 0
               ? publish(js, atol(argv[3]), atoi(argv[4]))
               : consume(js, atol(argv[3]), argv[4], atoi(argv[5]));
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  nats_Close();
  return rc;
}

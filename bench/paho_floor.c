/* Paho C's own per-message floor (issue 19): publishes the lines "1".."N" (as `seq`
 * prints them) on one topic with MQTTAsync_sendMessage, MQTT 5, through the shared
 * library linewired uses (libpaho-mqtt3as), and prints its own CPU seconds. Nothing
 * else runs in it: no pipe to read, no C++ wrapper, no queue of ours.
 *
 *   paho_floor URL TOPIC QOS N [--seq] [--main]
 *
 * At most 16 messages are with Paho at once (the agent's window,
 * transports/mqtt/mqtt_client.cpp): without a window Paho C refuses the 101st queued
 * command (MQTTASYNC_MAX_BUFFERED_MESSAGES) at QoS 1 and at QoS 0 walks a growing
 * command list (37 µs a message here). Each completion (QoS 0: written; QoS 1: PUBACK)
 * hands the next message to Paho from Paho's own callback thread, as the agent does;
 * with --main the main thread does it, woken by a semaphore per completion, which is
 * what a program that publishes from its own thread pays. --seq adds the `seq` user
 * property, as the agent does. Prints "cpu_s wall_s". Built by bench/brokers.py. */
#include <MQTTAsync.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

enum { kWindow = 16 };

static MQTTAsync client;
static const char* topic;
static int qos;
static long n;
static int with_seq;
static int from_main;
static atomic_long next_line = 1; /* the next line to hand over */
static atomic_long completed = 0;
static sem_t done;     /* the connect, then the last completion */
static sem_t finished; /* --main: one post per completion */

static void on_completed(void* context, MQTTAsync_successData5* data);

static void on_failed(void* context, MQTTAsync_failureData5* data) {
  (void)context;
  fprintf(stderr, "paho_floor: failed (code %d)\n", data ? data->code : -1);
  exit(1);
}

static void send_line(long i) {
  char payload[24];
  char seq[24];
  MQTTAsync_message msg = MQTTAsync_message_initializer;
  msg.payload = payload;
  msg.payloadlen = snprintf(payload, sizeof payload, "%ld", i);
  msg.qos = qos;
  MQTTProperty prop;
  if (with_seq) {
    prop.identifier = MQTTPROPERTY_CODE_USER_PROPERTY;
    prop.value.data.data = "seq";
    prop.value.data.len = 3;
    prop.value.value.data = seq;
    prop.value.value.len = snprintf(seq, sizeof seq, "%ld", i);
    MQTTProperties_add(&msg.properties, &prop);
  }
  MQTTAsync_responseOptions opts = MQTTAsync_responseOptions_initializer;
  opts.onSuccess5 = on_completed;
  opts.onFailure5 = on_failed;
  int rc = MQTTAsync_sendMessage(client, topic, &msg, &opts);
  if (with_seq) MQTTProperties_free(&msg.properties);
  if (rc != MQTTASYNC_SUCCESS) {
    fprintf(stderr, "paho_floor: sendMessage failed at %ld: %d\n", i, rc);
    exit(1);
  }
}

static void on_completed(void* context, MQTTAsync_successData5* data) {
  (void)context;
  (void)data;
  if (from_main) {
    sem_post(&finished);
    return;
  }
  long i = atomic_fetch_add(&next_line, 1);
  if (i <= n) send_line(i);
  if (atomic_fetch_add(&completed, 1) + 1 == n) sem_post(&done);
}

static void on_connected(void* context, MQTTAsync_successData5* data) {
  (void)context;
  (void)data;
  sem_post(&done);
}

static double seconds(struct timeval t) { return (double)t.tv_sec + (double)t.tv_usec / 1e6; }

int main(int argc, char** argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: paho_floor URL TOPIC QOS N [--seq] [--main]\n");
    return 2;
  }
  topic = argv[2];
  qos = atoi(argv[3]);
  n = atol(argv[4]);
  for (int a = 5; a < argc; ++a) {
    if (strcmp(argv[a], "--seq") == 0) with_seq = 1;
    if (strcmp(argv[a], "--main") == 0) from_main = 1;
  }
  sem_init(&done, 0, 0);
  sem_init(&finished, 0, 0);

  MQTTAsync_createOptions create = MQTTAsync_createOptions_initializer5;
  if (MQTTAsync_createWithOptions(&client, argv[1], "paho-floor", MQTTCLIENT_PERSISTENCE_NONE, NULL,
                                  &create) != MQTTASYNC_SUCCESS)
    return 1;
  MQTTAsync_connectOptions conn = MQTTAsync_connectOptions_initializer5;
  conn.cleanstart = 1;
  conn.onSuccess5 = on_connected;
  conn.onFailure5 = on_failed;
  if (MQTTAsync_connect(client, &conn) != MQTTASYNC_SUCCESS) return 1;
  sem_wait(&done);

  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  struct rusage r0, r1;
  getrusage(RUSAGE_SELF, &r0);
  if (from_main) {
    for (long i = 1; i <= n; ++i) {
      if (i > kWindow) sem_wait(&finished);
      send_line(i);
    }
    for (long i = 0; i < (n < kWindow ? n : kWindow); ++i) sem_wait(&finished);
  } else {
    for (long k = 0; k < kWindow; ++k) {
      long i = atomic_fetch_add(&next_line, 1);
      if (i <= n) send_line(i);
    }
    sem_wait(&done);
  }
  getrusage(RUSAGE_SELF, &r1);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  printf("%.6f %.6f\n",
         seconds(r1.ru_utime) + seconds(r1.ru_stime) - seconds(r0.ru_utime) - seconds(r0.ru_stime),
         (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
  fflush(stdout);
  _Exit(0);
}

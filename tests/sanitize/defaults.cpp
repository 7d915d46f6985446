// Sanitizer defaults built into every executable of a LINEWIRE_SANITIZE build. The
// integration harness starts linewired with a clean environment (SPEC §5 keeps the
// agent's children to PATH, HOME, LANG, and the tests do the same to the agent), so
// ASAN_OPTIONS and friends from scripts/test.sh would never reach it: the options live
// here instead. The environment still overrides them where it is passed.
extern "C" {
const char* __asan_default_options() { return "detect_leaks=1:exitcode=86:halt_on_error=1"; }
const char* __ubsan_default_options() { return "print_stacktrace=1:halt_on_error=1"; }
// What LeakSanitizer may ignore: only third-party allocations held until exit.
// Paho MQTT C keeps global state (heap tracker, thread and socket tables) that only
// MQTTAsync_global_cleanup frees, which nothing calls at exit. OpenSSL is built without
// frame pointers, so the fast unwinder's stack of an allocation inside it (Paho's TLS
// objects) ends at its first frame and the Paho lines cannot see the caller; the same
// as tests/lsan.supp, which the agent never reads (clean environment, above). Seen
// twice in the client-certificate test: 10 KB from CRYPTO_zalloc, no caller.
const char* __lsan_default_suppressions() {
  return "leak:libpaho-mqtt3as\n"
         "leak:libpaho-mqttpp3\n"
         "leak:libcrypto.so\n";
}
}

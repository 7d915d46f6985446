// Fuzzes what the network controls in a request: the start payload (parse_start), the
// topic it arrived on (Topics::parse), names and signal names. Input: the first line
// is the topic, the rest the payload. Nothing may crash, leak or hit UB, and whatever
// parses must satisfy the invariants the agent relies on.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "protocol/names.hpp"
#include "protocol/request.hpp"

using namespace linewire::protocol;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

bool clean_name(std::string_view s) {
  return s.find_first_of(std::string_view("/+#\0", 4)) == std::string_view::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::size_t nl = input.find('\n');
  std::string_view topic = nl == std::string_view::npos ? input : input.substr(0, nl);
  std::string_view payload =
      nl == std::string_view::npos ? std::string_view{} : input.substr(nl + 1);

  static const Topics topics("site-a/lw", "dev-1");
  if (auto t = topics.parse(topic)) {
    // A parsed topic's name is only ever used after valid_name(); the one guarantee
    // here is that parse cut at '/' and kept the name as it was.
    check(t->name.find('/') == std::string::npos);
    check(t->group.find('/') == std::string::npos);
    if (valid_name(t->name)) {
      check(clean_name(t->name));
      // Rebuilding the topic must give back the same bytes.
      if (t->kind == RequestKind::start) check(topics.command(t->name, "start") == topic);
    }
  }
  if (valid_name(topic)) check(clean_name(topic) && topic.size() <= 64);
  if (auto sig = parse_signal(topic)) check(*sig > 0 && *sig < 65);

  ParsedStart p = parse_start(payload);
  if (!p.error) {
    // JSON text never holds a raw NUL (not between tokens, not inside a string), so a
    // payload with one is never a valid request.
    check(payload.find('\0') == std::string_view::npos);
    if (p.request.id) check(valid_name(*p.request.id) && clean_name(*p.request.id));
    if (p.request.timeout) check(p.request.timeout->count() > 0);
  }
  return 0;
}

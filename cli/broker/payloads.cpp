#include "cli/requests.hpp"

#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>
#include <random>

namespace linewire::cli {

using nlohmann::json;

std::string start_payload(const StartFields& f) {
  json doc = json::object();
  if (!f.id.empty()) doc["id"] = f.id;
  if (!f.args.empty()) doc["args"] = f.args;
  if (f.timeout_s) doc["timeout"] = *f.timeout_s;
  if (!f.reply_to.empty()) {
    doc["reply_to"] = f.reply_to;
    if (!f.correlation.empty()) doc["correlation"] = f.correlation;
  }
  // Arguments are bytes from the command line: replace what is not UTF-8 rather than throw.
  return doc.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string random_hex(std::size_t n) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(n);
  while (out.size() < n) {
    auto bits = rng();
    for (int i = 0; i < 16 && out.size() < n; ++i, bits >>= 4) out.push_back(kHex[bits & 0xf]);
  }
  return out;
}

std::string new_run_id() {
  std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S-", &tm);
  return buf + random_hex(6);
}

}  // namespace linewire::cli

namespace linewire::cli {

std::optional<Reply> parse_reply(std::string_view payload) {
  json doc = json::parse(payload, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return std::nullopt;
  auto ok = doc.find("ok");
  if (ok == doc.end() || !ok->is_boolean()) return std::nullopt;
  auto text = [](const json& d, const char* key) {
    auto it = d.find(key);
    return it != d.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  Reply r;
  r.ok = ok->get<bool>();
  r.device = text(doc, "device");
  r.run = text(doc, "run");
  r.correlation = text(doc, "correlation");
  auto queued = doc.find("queued");
  r.queued = queued != doc.end() && queued->is_boolean() && queued->get<bool>();
  auto error = doc.find("error");
  if (error != doc.end() && error->is_object()) {
    r.code = text(*error, "code");
    r.message = text(*error, "message");
  }
  if (!r.ok && r.code.empty()) r.code = "refused";
  return r;
}

}  // namespace linewire::cli

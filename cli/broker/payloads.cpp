// Builds start requests and reads replies (SPEC §3): see payloads.hpp.
#include "cli/broker/payloads.hpp"

#include <nlohmann/json.hpp>

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

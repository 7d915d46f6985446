// Publishes every request to a device, signed when there is a key: see requester.hpp.
#include "cli/broker/requester.hpp"

#include <nlohmann/json.hpp>

#include "cli/broker/signer.hpp"

namespace linewire::cli {

using nlohmann::json;

namespace {

std::string fields_of(const json& doc) {
  return doc.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace

void Requester::start(const std::string& topic, StartFields fields,
                      const std::string& correlation) {
  PublishProps props;
  if (connection_.v5()) {
    props.response_topic = connection_.reply_topic();
    props.correlation = correlation;
  } else {
    fields.reply_to = connection_.reply_topic();
    fields.correlation = correlation;
  }
  const std::string payload = start_payload(fields);
  const Signer* signer = connection_.signer();
  connection_.publish(topic, signer ? signer->envelope(topic, payload) : payload, props);
}

void Requester::line(const std::string& topic, std::string_view line) {
  send(topic, line, connection_.signer() ? fields_of({{"line", line}}) : std::string(), {});
}

void Requester::eof(const std::string& topic) { send(topic, "", "{}", {}); }

void Requester::signal(const std::string& topic, std::string_view name,
                       const std::string& correlation) {
  signalled_ = true;
  send(topic, name, fields_of({{"signal", name}}), correlation);
}

void Requester::replay(const std::string& topic, std::uint64_t from_out, std::uint64_t from_err,
                       const std::string& correlation) {
  json fields = {{"from", {{"out", from_out}, {"err", from_err}}}};
  PublishProps props;
  if (connection_.v5()) {
    props.response_topic = connection_.replay_topic();
    props.correlation = correlation;
  } else {
    fields["reply_to"] = connection_.replay_topic();
    fields["correlation"] = correlation;
  }
  const std::string payload = fields_of(fields);
  const Signer* signer = connection_.signer();
  connection_.publish(topic, signer ? signer->envelope(topic, payload) : payload, props);
}

void Requester::send(const std::string& topic, std::string_view plain, std::string_view fields,
                     const std::string& correlation) {
  PublishProps props;
  if (!correlation.empty() && connection_.v5()) {
    props.response_topic = connection_.reply_topic();
    props.correlation = correlation;
  }
  const Signer* signer = connection_.signer();
  if (signer)
    connection_.publish(topic, signer->envelope(topic, fields), props);
  else
    connection_.publish(topic, plain, props);
}

}  // namespace linewire::cli

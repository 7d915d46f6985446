#include "cli/requester.hpp"

namespace linewire::cli {

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
  connection_.publish(topic, start_payload(fields), props);
}

void Requester::send(const std::string& topic, std::string_view payload,
                     const std::string& correlation) {
  PublishProps props;
  if (!correlation.empty() && connection_.v5()) {
    props.response_topic = connection_.reply_topic();
    props.correlation = correlation;
  }
  connection_.publish(topic, payload, props);
}

void Requester::signal(const std::string& topic, std::string_view name,
                       const std::string& correlation) {
  signalled_ = true;
  send(topic, name, correlation);
}

}  // namespace linewire::cli

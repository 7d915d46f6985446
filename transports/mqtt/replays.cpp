#include "transports/mqtt/replays.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>

#include "agent/agent.hpp"
#include "transports/mqtt/mqtt_client.hpp"

namespace linewire::mqtt {

namespace asio = boost::asio;
using nlohmann::json;

namespace {

json range(const std::optional<std::uint64_t>& first, const std::optional<std::uint64_t>& last) {
  return {{"first", first ? json(*first) : json(nullptr)},
          {"last", last ? json(*last) : json(nullptr)}};
}

}  // namespace

Replays::Replays(asio::io_context& io, agent::Agent& agent, Client& client, int qos)
    : io_(io), agent_(agent), client_(client), qos_(qos) {}

Replays::~Replays() { *alive_ = false; }

std::optional<protocol::Error> Replays::add(std::string run, const protocol::ReplayRequest& request,
                                            Reply reply) {
  Job job{std::move(run), request, std::move(reply), {}, {}, 0, {}, {}, {}, {}, false};
  job.out_topic = job.reply.topic + "/out";
  job.err_topic = job.reply.topic + "/err";
  if (active_.size() < kActive) {
    active_.push_back(std::move(job));
    schedule();
    return std::nullopt;
  }
  if (waiting_.size() >= kWaiting)
    return protocol::Error{protocol::ErrorCode::busy,
                           "too many replays under way (" + std::to_string(kActive) + " running, " +
                               std::to_string(kWaiting) + " waiting); ask again"};
  waiting_.push_back(std::move(job));
  return std::nullopt;
}

void Replays::resume() {
  if (!active_.empty()) schedule();
}

// A turn at a time: other handlers (the runs' live lines, requests) get the io_context
// between two turns.
void Replays::schedule() {
  if (scheduled_) return;
  scheduled_ = true;
  asio::post(io_, [this, alive = std::weak_ptr<bool>(alive_)] {
    if (alive.expired()) return;
    scheduled_ = false;
    pump();
  });
}

void Replays::pump() {
  for (std::size_t i = 0; i < active_.size();) {
    // The output queue is full: resume() goes on once it drains (Client's low mark).
    if (client_.congested()) return;
    if (step(active_[i])) {
      ++i;
      continue;
    }
    finish(active_[i]);
    active_.erase(active_.begin() + static_cast<std::ptrdiff_t>(i));
    if (!waiting_.empty()) {
      active_.push_back(std::move(waiting_.front()));
      waiting_.pop_front();
    }
  }
  if (!active_.empty() && !client_.congested()) schedule();
}

bool Replays::step(Job& job) {
  const agent::History::Run* kept = agent_.history().find(job.run);
  if (!kept) {
    job.forgotten = true;
    return false;
  }
  std::size_t sent = 0;
  auto it = kept->at(job.pos);
  // Lines ahead of the replay went meanwhile (the run's history is full): it ends here,
  // so that `first`..`last` has no hole; the client asks again from `last` + 1.
  if (job.pos > 0 && it != kept->lines.end() && it->pos != job.pos) return false;
  for (; it != kept->lines.end() && sent < kBatch; ++it) {
    job.pos = it->pos + 1;
    const bool out = it->stream == agent::Stream::out;
    if (!(out ? job.request.out : job.request.err)) continue;
    if (it->seq < (out ? job.request.from_out : job.request.from_err)) continue;
    PublishOptions o;
    o.qos = qos_;
    o.seq = it->seq;
    client_.publish(out ? job.out_topic : job.err_topic, it->text, o);
    auto& first = out ? job.first_out : job.first_err;
    if (!first) first = it->seq;
    (out ? job.last_out : job.last_err) = it->seq;
    ++sent;
    if (client_.congested()) return true;
  }
  // At the end of what is kept now: for a running run, what comes next is live.
  return it != kept->lines.end();
}

// The summary after the lines, so that a client subscribed to REPLY/# has every
// replayed line when it sees it.
void Replays::finish(Job& job) {
  const std::string& device = agent_.config().device;
  json doc;
  if (job.forgotten) {
    doc = {{"ok", false},
           {"device", device},
           {"error",
            {{"code", "unknown_run"},
             {"message", "the kept output of run '" + job.run +
                             "' was forgotten while it was replayed (keep_runs)"}}}};
  } else {
    doc = {{"ok", true},
           {"device", device},
           {"run", job.run},
           {"state", agent_.history().find(job.run)->state},
           {"out", range(job.first_out, job.last_out)},
           {"err", range(job.first_err, job.last_err)}};
    ++agent_.metrics().replays;
  }
  if (job.reply.correlation_field) doc["correlation"] = *job.reply.correlation_field;
  PublishOptions o;
  o.qos = qos_;
  o.correlation = job.reply.correlation ? &*job.reply.correlation : nullptr;
  client_.publish(job.reply.topic, doc.dump(-1, ' ', false, json::error_handler_t::replace), o);
  spdlog::info("replay of run {} to {}: out {}..{}, err {}..{}", job.run, job.reply.topic,
               job.first_out.value_or(0), job.last_out.value_or(0), job.first_err.value_or(0),
               job.last_err.value_or(0));
}

}  // namespace linewire::mqtt

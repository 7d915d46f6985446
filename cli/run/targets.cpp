// The targets of a fan-out: see targets.hpp.
#include "cli/run/targets.hpp"

#include <nlohmann/json.hpp>

namespace linewire::cli {

using nlohmann::json;

TargetChoice pick_targets(const DeviceDirectory& directory, const RunOptions& o, Fanout& fanout,
                          const std::string& url, const std::string& prefix) {
  TargetChoice choice;
  auto note = [&](std::string text) { choice.notes.push_back(std::move(text)); };
  auto done = [&](bool go) {
    choice.go = go;
    return choice;
  };
  const bool batched = o.batch != 0;
  auto target = [&](const std::string& d) {
    if (batched)
      fanout.queue(d);
    else
      fanout.expect(d);
  };
  if (o.all) {
    for (const auto& d : directory.devices()) {
      if (d.online())
        target(d.name);
      else
        fanout.skip(d.name);
    }
    if (fanout.counts().targeted == 0) {
      note("no device is online on " + url + " under " + prefix + "/");
      return done(false);
    }
    return done(true);
  }
  std::size_t unreadable = 0;
  for (const auto& d : directory.devices()) {
    if (d.in_group(o.group)) {
      if (d.online()) {
        target(d.name);
      } else if (o.online) {
        fanout.skip(d.name);
      } else {
        fanout.offline(d.name);
        note(d.name + ": offline, not run");
      }
      continue;
    }
    // An info that is not JSON, or from an agent too old to list its groups: the
    // device may be a member all the same. Said, and (without --batch) it may answer.
    if (!d.info.is_object() || !d.info.contains("groups") || !d.info["groups"].is_array()) {
      note(d.name + ": its retained info " +
           std::string(d.info.is_object() ? "lists no groups (an older agent?)"
                                          : "is missing or not a JSON object") +
           "; cannot tell whether it is in group '" + o.group + "'");
      if (d.online()) ++unreadable;
    }
  }
  if (fanout.counts().targeted > 0) return done(true);
  if (!fanout.entries().empty()) {
    note("no member of group '" + o.group + "' is online (--online)");
    return done(false);
  }
  if (directory.devices().empty() && !batched) {
    // No retained status or info at all: the broker may not deliver retained messages
    // to wildcard subscriptions (RabbitMQ), so the members cannot be known; the group
    // request is broadcast and whoever answers within --wait is followed. Offline
    // members cannot be told from absent ones here.
    note("no device's retained status or info seen under " + prefix + "/ on " + url +
         "; the members of group '" + o.group +
         "' cannot be known (a broker that keeps "
         "retained messages from wildcard subscriptions?): asking the group and waiting " +
         json(o.wait_s).dump() + " s for answers");
    return done(true);
  }
  if (unreadable > 0 && !batched) {
    note("no device lists group '" + o.group + "' in its info; waiting " + json(o.wait_s).dump() +
         " s for answers from the " + std::to_string(unreadable) +
         " online device(s) whose groups are unknown");
    return done(true);
  }
  note("no device lists group '" + o.group + "' in its retained info (" +
       std::to_string(directory.devices().size()) + " device(s) seen under " + prefix + "/ on " +
       url + ")");
  return done(false);
}

}  // namespace linewire::cli

// websocketd drop-in mode (SPEC §8): `linewired --port=8080 [flags] PROGRAM [ARGS...]`
// serves PROGRAM on every path, no config file, no MQTT.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace linewire::websocket {

// True when the command line asks for drop-in mode: a --port flag before the program.
bool is_dropin(int argc, char** argv);

// The process set-up both modes share (logging at a spdlog level name, SIGPIPE ignored):
// linewired's main owns it; the drop-in calls it once its flags are read.
using ProcessSetup = std::function<void(const std::string& log_level)>;

// Serves until SIGTERM/SIGINT; returns the exit code (2 for bad flags, as websocketd).
int run_dropin(int argc, char** argv, const std::string& version, const ProcessSetup& setup);

}  // namespace linewire::websocket

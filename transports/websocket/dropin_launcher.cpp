#include "transports/websocket/dropin_launcher.hpp"

namespace linewire::websocket {

// The real process behind the Run's back: the Run's calls pass through, except that
// pausing is shared with the link's consumer.
class LinkedProcess final : public agent::Process {
 public:
  LinkedProcess(std::unique_ptr<agent::Process> real, std::shared_ptr<ProcessLink> link)
      : real_(std::move(real)), link_(std::move(link)) {
    link_->process_ = real_.get();
  }
  ~LinkedProcess() override { link_->process_ = nullptr; }

  pid_t pid() const override { return real_->pid(); }
  void write_stdin(std::string data) override { real_->write_stdin(std::move(data)); }
  void close_stdin() override { real_->close_stdin(); }
  bool signal_group(int sig) override { return real_->signal_group(sig); }
  void pause_output() override {
    link_->run_paused_ = true;
    link_->update();
  }
  void resume_output() override {
    link_->run_paused_ = false;
    link_->update();
  }
  bool running() const override { return real_->running(); }

 private:
  std::unique_ptr<agent::Process> real_;
  std::shared_ptr<ProcessLink> link_;
};

void ProcessLink::write_stdin(std::string bytes) {
  if (process_) process_->write_stdin(std::move(bytes));
}

void ProcessLink::hold_output(bool hold) {
  held_ = hold;
  update();
}

void ProcessLink::update() {
  bool pause = run_paused_ || held_;
  if (!process_ || pause == paused_) return;
  paused_ = pause;
  if (pause)
    process_->pause_output();
  else
    process_->resume_output();
}

std::shared_ptr<ProcessLink> DropInLauncher::expect(const std::string& run, LaunchChange change) {
  auto link = std::make_shared<ProcessLink>();
  expected_[run] = Expected{std::move(change), link};
  return link;
}

std::unique_ptr<agent::Process> DropInLauncher::launch(boost::asio::io_context& io,
                                                       const agent::ProcessSpec& spec,
                                                       agent::Process::Callbacks callbacks,
                                                       std::error_code& ec) {
  // The run's id is in the environment the Run made for it (SPEC §5).
  std::string run;
  for (const auto& e : spec.env)
    if (e.starts_with("LINEWIRE_RUN=")) run = e.substr(13);
  auto it = expected_.find(run);
  if (it == expected_.end())
    return agent::system_launcher().launch(io, spec, std::move(callbacks), ec);
  Expected expected = std::move(it->second);
  expected_.erase(it);
  agent::ProcessSpec changed = spec;
  if (!expected.change.executable.empty()) changed.executable = expected.change.executable;
  if (!expected.change.cwd.empty()) changed.cwd = expected.change.cwd;
  if (expected.change.raw_stdout)
    callbacks.on_stdout = [link = expected.link](std::string_view chunk) {
      if (link->consumer_) link->consumer_(chunk);
    };
  auto real = agent::system_launcher().launch(io, changed, std::move(callbacks), ec);
  if (!real) return nullptr;
  return std::make_unique<LinkedProcess>(std::move(real), std::move(expected.link));
}

}  // namespace linewire::websocket

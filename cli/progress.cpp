#include "cli/progress.hpp"

#include <unistd.h>

namespace probefarm::cli {

std::string format_bytes(std::uint64_t bytes) {
  char s[32];
  if (bytes < 1024)
    std::snprintf(s, sizeof(s), "%llu B", static_cast<unsigned long long>(bytes));
  else if (bytes < 1024 * 1024)
    std::snprintf(s, sizeof(s), "%.1f KiB", static_cast<double>(bytes) / 1024);
  else
    std::snprintf(s, sizeof(s), "%.2f MiB", static_cast<double>(bytes) / (1024 * 1024));
  return s;
}

ProgressBar::ProgressBar(bool enabled, std::FILE* out)
    : enabled_(enabled && isatty(fileno(out))), out_(out) {}

ProgressBar::~ProgressBar() {
  finish();
}

void ProgressBar::update(const flash::Progress& p) {
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (p.phase != phase_) {
    finish();
    phase_ = std::string(p.phase);
    phase_start_ = now;
  }
  done_ = p.done;
  total_ = p.total;
  draw(done_ >= total_);
}

void ProgressBar::draw(bool force) {
  auto now = std::chrono::steady_clock::now();
  // A redraw every 100 ms is smooth enough and keeps a slow terminal out of the way.
  if (!force && drawn_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  constexpr int kWidth = 30;
  int filled = total_ ? static_cast<int>(kWidth * done_ / total_) : kWidth;
  std::string bar(static_cast<std::size_t>(filled), '#');
  bar.resize(kWidth, '.');
  double seconds = std::chrono::duration<double>(now - phase_start_).count();
  std::string rate =
      seconds > 0.05 ? format_bytes(static_cast<std::uint64_t>(done_ / seconds)) + "/s" : "";
  std::fprintf(out_, "\r%-8s [%s] %s / %s  %s\033[K", phase_.c_str(), bar.c_str(),
               format_bytes(done_).c_str(), format_bytes(total_).c_str(), rate.c_str());
  std::fflush(out_);
  drawn_ = true;
  drawn_done_ = done_;
}

void ProgressBar::finish() {
  if (!enabled_ || !drawn_) return;
  if (drawn_done_ != done_) draw(true);
  std::fputc('\n', out_);
  std::fflush(out_);
  drawn_ = false;
}

}  // namespace probefarm::cli

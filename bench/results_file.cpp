#include "bench/results_file.hpp"

#include <fstream>
#include <sstream>

namespace probefarm::bench {
namespace {

std::string begin_marker(const std::string& name) {
  return "<!-- begin " + name + " -->";
}
std::string end_marker(const std::string& name) {
  return "<!-- end " + name + " -->";
}

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

std::string read_section(const std::string& path, const std::string& name) {
  const std::string text = slurp(path);
  const auto b = text.find(begin_marker(name));
  const auto e = text.find(end_marker(name));
  if (b == std::string::npos || e == std::string::npos || e < b) return "";
  return text.substr(b, e - b + end_marker(name).size()) + "\n";
}

bool write_section(const std::string& path, const std::string& name, const std::string& text) {
  std::string file = slurp(path);
  const std::string block = begin_marker(name) + "\n" + text +
                            (text.empty() || text.back() == '\n' ? "" : "\n") + end_marker(name) +
                            "\n";
  const auto b = file.find(begin_marker(name));
  const auto e = file.find(end_marker(name));
  if (b != std::string::npos && e != std::string::npos && e > b) {
    auto after = e + end_marker(name).size();
    if (after < file.size() && file[after] == '\n') ++after;
    file.replace(b, after - b, block);
  } else {
    if (!file.empty() && file.back() != '\n') file += '\n';
    file += (file.empty() ? "" : "\n") + block;
  }
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << file;
    if (!out.flush()) return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

}  // namespace probefarm::bench

#pragma once
// A probefarm-sim child process serving one board per probe kind, for tests that run the
// real libusb backend through the simulator's stand-in libusb-1.0.so.0.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/sim_process.hpp"
#include "probe/discovery.hpp"
#include "probe/usb_libusb.hpp"

namespace probefarm::probe::test {

// The boards of every probe kind, in the order the simulator numbers them.
inline const std::vector<std::string> kBoards = {
    "stm32f103c8:stlink-v2", "stm32f303vc:cmsis-dap-v1", "stm32f407vg:cmsis-dap-v2",
    "stm32f746ng:stlink-v3", "stm32f407vg:stlink-v2-1",
};

class SimTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_THROW(sim_ = std::make_unique<probefarm::test::SimProcess>(kBoards));
    serials_ = sim_->by_probe();
    ASSERT_EQ(serials_.size(), kBoards.size());
    usb_ = make_libusb_context();
  }

  void TearDown() override {
    usb_.reset();
    sim_.reset();
  }

  // `probefarm-sim ctl --socket S <verb> <args…>`; returns its exit status.
  int ctl(const std::vector<std::string>& verb) { return sim_->ctl(verb); }

  const ProbeInfo* find(const ProbeList& list, const std::string& serial) {
    for (const auto& p : list.probes)
      if (p.serial == serial) return &p;
    return nullptr;
  }

  std::unique_ptr<probefarm::test::SimProcess> sim_;
  std::map<std::string, std::string> serials_;  // probe kind name → serial
  std::shared_ptr<UsbContext> usb_;
};

}  // namespace probefarm::probe::test

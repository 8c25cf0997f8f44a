// Hot-plug through the real libusb backend: the simulator unplugs and replugs a probe.
#include "probe/hotplug.hpp"

#include <gtest/gtest.h>

#include "sim_fixture.hpp"

namespace probefarm::probe::test {
namespace {

using HotplugTest = SimTest;

TEST_F(HotplugTest, ReportsAProbeLeavingAndArriving) {
  ProbeWatcher watcher(usb_);
  const std::string serial = serials_.at("cmsis-dap-v2");
  ASSERT_NE(find(ProbeList{watcher.current(), {}}, serial), nullptr);
  EXPECT_TRUE(watcher.refresh().empty()) << "nothing changed yet";

  ASSERT_EQ(ctl({"unplug", serial}), 0);
  auto events = watcher.poll(std::chrono::seconds(5));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_FALSE(events[0].arrived);
  EXPECT_EQ(events[0].probe.serial, serial);
  EXPECT_EQ(events[0].probe.kind, ProbeKind::cmsis_dap_v2);
  EXPECT_EQ(find(ProbeList{watcher.current(), {}}, serial), nullptr);

  ASSERT_EQ(ctl({"replug", serial}), 0);
  events = watcher.poll(std::chrono::seconds(5));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(events[0].arrived);
  EXPECT_EQ(events[0].probe.serial, serial);
  EXPECT_EQ(watcher.current().size(), kBoards.size());
}

TEST_F(HotplugTest, PollReturnsEmptyWhenNothingChangesWithinTheWait) {
  ProbeWatcher watcher(usb_);
  EXPECT_TRUE(watcher.poll(std::chrono::milliseconds(300), std::chrono::milliseconds(100)).empty());
  EXPECT_EQ(watcher.current().size(), kBoards.size());
}

}  // namespace
}  // namespace probefarm::probe::test

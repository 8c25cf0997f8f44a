// Target power and the SWD-OFF board option: the demo firmware (firmware/demo/swd_pins.c)
// takes PA13/PA14 away from the SW-DP when the jumper is fitted, nRST gives them back, and
// a powered-off target answers nothing and forgets its RAM.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include "board.hpp"
#include "sw_dp.hpp"

namespace probefarm::sim {
namespace {

constexpr std::uint32_t kDemoCounter = 0x20002000;  // firmware/demo/demo.h

// The board boots the demo from its state directory, as after an earlier flashing.
std::filesystem::path state_with_demo(const ChipInfo& chip) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("pf-power-" + std::to_string(getpid()) + "-" + std::string(chip.name));
  std::filesystem::create_directories(dir);
  std::ifstream in(std::string(PROBEFARM_FIRMWARE_DIR) + "/demo_" + std::string(chip.name) + ".bin",
                   std::ios::binary);
  std::vector<char> flash((std::istreambuf_iterator<char>(in)), {});
  EXPECT_GT(flash.size(), 64u);
  flash.resize(chip.flash_size, static_cast<char>(0xFF));
  std::ofstream(dir / "flash.bin", std::ios::binary).write(flash.data(), flash.size());
  return dir;
}

// JTAG-to-SWD switch and line reset (ADIv5.2 B5.2, B4.3.3), then a DPIDR read.
SwdAck connect(SwDp& dp) {
  const std::uint8_t ones[8] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
  const std::uint8_t select[2] = {0x9E, 0xE7};
  const std::uint8_t idle[1] = {0};
  dp.sequence(ones, 56);
  dp.sequence(select, 16);
  dp.sequence(ones, 56);
  dp.sequence(idle, 8);
  return dp.transfer(false, true, 0, 0).ack;
}

class BoardPower : public ::testing::TestWithParam<const char*> {
 protected:
  BoardPower()
      : chip_(*find_chip(GetParam())),
        dir_(state_with_demo(chip_)),
        board_(
            chip_,
            BoardOptions{
                .serial = "PFPOWER1", .uid_seed = 0, .state_dir = dir_, .swd_off_jumper = true}) {}
  ~BoardPower() override { std::filesystem::remove_all(dir_); }

  std::uint32_t counter() { return board_.read(kDemoCounter, 4).value; }

  const ChipInfo& chip_;
  std::filesystem::path dir_;
  Board board_;
};

TEST_P(BoardPower, FirmwareTakesSwdPinsOnlyConnectUnderResetReachesTheDp) {
  EXPECT_TRUE(board_.swd_pins_connected()) << "pins are SWD out of reset";
  board_.advance(kMillisecond);
  EXPECT_GT(counter(), 0u) << "the demo runs";
  EXPECT_FALSE(board_.swd_pins_connected()) << "the demo released the SWD pins";
  EXPECT_EQ(connect(board_.swd()), SwdAck::no_response);

  board_.set_nrst(true);
  EXPECT_TRUE(board_.swd_pins_connected()) << "nRST resets the pin configuration";
  EXPECT_EQ(connect(board_.swd()), SwdAck::ok);
  EXPECT_EQ(board_.swd().transfer(false, true, 0, 0).ack, SwdAck::ok);

  board_.set_nrst(false);
  board_.advance(kMillisecond);
  EXPECT_EQ(board_.swd().transfer(false, true, 0, 0).ack, SwdAck::no_response)
      << "released from reset, the firmware takes the pins again";

  board_.set_swd_off_jumper(false);
  board_.system_reset();
  board_.advance(kMillisecond);
  EXPECT_TRUE(board_.swd_pins_connected()) << "without the jumper the demo leaves SWD alone";
  EXPECT_EQ(board_.swd().transfer(false, true, 0, 0).ack, SwdAck::ok);
}

TEST_P(BoardPower, PoweredOffTargetAnswersNothingAndLosesRam) {
  board_.set_swd_off_jumper(false);
  board_.system_reset();
  ASSERT_EQ(connect(board_.swd()), SwdAck::ok);
  board_.advance(kMillisecond);
  ASSERT_GT(counter(), 0u);

  board_.set_powered(false);
  EXPECT_FALSE(board_.powered());
  EXPECT_EQ(board_.vtref_mv(), 0u);
  EXPECT_FALSE(board_.swd_pins_connected());
  EXPECT_EQ(board_.swd().transfer(false, true, 0, 0).ack, SwdAck::no_response);
  const Picoseconds before = board_.now();
  board_.advance(kMillisecond);
  EXPECT_EQ(board_.now(), before + kMillisecond) << "time still passes";

  board_.set_powered(true);
  EXPECT_EQ(board_.vtref_mv(), 3300u);
  EXPECT_EQ(counter(), 0u) << "RAM lost";
  EXPECT_EQ(board_.swd().transfer(false, true, 0, 0).ack, SwdAck::no_response)
      << "power-on reset: the DP is back in JTAG mode";
  EXPECT_EQ(connect(board_.swd()), SwdAck::ok);
  board_.advance(kMillisecond);
  EXPECT_GT(counter(), 0u) << "the demo runs again from flash";
}

INSTANTIATE_TEST_SUITE_P(Board, BoardPower,
                         ::testing::Values("stm32f103c8", "stm32f303vc", "stm32f407vg",
                                           "stm32f746ng"),
                         [](const auto& info) { return std::string(info.param); });

}  // namespace
}  // namespace probefarm::sim

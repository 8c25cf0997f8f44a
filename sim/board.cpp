#include "board.hpp"

#include <algorithm>
#include <fstream>
#include <stdexcept>
#include <unordered_map>
#include <vector>

#include "cortex_m.hpp"
#include "flash_controller.hpp"
#include "sw_dp.hpp"

namespace probefarm::sim {
namespace {

constexpr std::uint32_t kPeripheralBase = 0x40000000;
constexpr std::uint32_t kPeripheralEnd = 0x60000000;
constexpr std::uint32_t kPpbBase = 0xE0000000;
constexpr std::uint32_t kPpbEnd = 0xE0100000;
// DBGMCU (ST's debug support block inside the PPB): IDCODE, CR, APB1_FZ, APB2_FZ.
// RM0008 31.16, RM0316 33.16, RM0090 38.16, RM0385 40.16.
constexpr std::uint32_t kDbgmcuBase = 0xE0042000;
constexpr std::uint32_t kRegisterBlock = 0x400;
// ARMv7-M ARM B3.2.6 AIRCR: VECTKEY, PRIGROUP, SYSRESETREQ.
constexpr std::uint32_t kAircr = 0xE000ED0C;
constexpr std::uint32_t kAircrVectKey = 0x05FA0000;
constexpr std::uint32_t kAircrPrigroup = 0x700;
constexpr std::uint32_t kAircrSysResetReq = 1u << 2;

bool inside(std::uint32_t addr, std::uint32_t base, std::uint32_t size) {
  return addr >= base && addr - base < size;
}

std::uint32_t load_le(const std::uint8_t* p, unsigned size) {
  std::uint32_t v = 0;
  for (unsigned i = 0; i < size; ++i)
    v |= std::uint32_t{p[i]} << (8 * i);
  return v;
}

void store_le(std::uint8_t* p, std::uint32_t v, unsigned size) {
  for (unsigned i = 0; i < size; ++i)
    p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}

// The registers behind the SWD-OFF board option (firmware/demo/swd_pins.c): the one that
// decides whether PA13/PA14 are SWDIO/SWCLK, and the input register of the jumper (PC13).
struct PinMux {
  std::uint32_t swd_reg;
  std::uint32_t swd_reg_reset;
  std::uint32_t jumper_idr;
  bool afio;  // F1: the SWJ_CFG field of AFIO_MAPR, not GPIO modes, releases the pins
};

PinMux pin_mux_for(const ChipInfo& chip) {
  switch (chip.flash_style) {
    case FlashStyle::f1:
      if (chip.name == std::string_view{"stm32f303vc"}) {
        // RM0316 11.4.1 GPIOA_MODER reset 0xA8000000 (PA13-PA15 alternate function),
        // 11.4.6 GPIOC_IDR at 0x48000810.
        return {0x48000000, 0xA8000000, 0x48000810, false};
      }
      // RM0008 9.4.2 AFIO_MAPR at 0x40010004 (reset 0), 9.2.3 GPIOC_IDR at 0x40011008.
      return {0x40010004, 0, 0x40011008, true};
    case FlashStyle::f4:
    case FlashStyle::f7:
      // RM0090 8.4.1 / RM0385 6.4.1 GPIOA_MODER reset 0xA8000000, GPIOC_IDR 0x40020810.
      return {0x40020000, 0xA8000000, 0x40020810, false};
  }
  return {};
}

// True if `value` in the pin-mux register takes PA13/PA14 away from the SW-DP.
bool releases_swd_pins(const PinMux& mux, std::uint32_t value) {
  // RM0008 9.4.2: SWJ_CFG = 100 disables JTAG-DP and SW-DP.
  if (mux.afio) return ((value >> 24) & 7) == 4;
  // MODER: anything but alternate function (10) on PA13 or PA14.
  return ((value >> 26) & 3) != 2 || ((value >> 28) & 3) != 2;
}

// FNV-1a: a stable hash so that a board's unique ID depends on its serial.
std::uint32_t fnv1a(std::string_view s) {
  std::uint32_t h = 2166136261u;
  for (char c : s)
    h = (h ^ static_cast<std::uint8_t>(c)) * 16777619u;
  return h;
}

bool load_file(const std::filesystem::path& path, std::vector<std::uint8_t>& into) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::vector<std::uint8_t> data((std::istreambuf_iterator<char>(in)), {});
  if (data.size() != into.size()) return false;  // a different chip's file: ignore it
  into = std::move(data);
  return true;
}

void save_file(const std::filesystem::path& path, std::span<const std::uint8_t> data) {
  // Write then rename, so that a crash never leaves a half-written state file.
  const auto tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data.data()),
              static_cast<std::streamsize>(data.size()));
    if (!out) throw std::runtime_error("cannot write " + tmp);
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace

struct Board::Impl {
  std::vector<std::uint8_t> flash;
  std::vector<std::uint8_t> option_bytes;
  std::vector<std::uint8_t> system_memory;
  std::vector<std::vector<std::uint8_t>> ram;
  std::unique_ptr<FlashController> flash_controller;
  std::unique_ptr<ClockControl> rcc;
  std::unique_ptr<SwDp> dp;
  std::unique_ptr<CortexM> core;
  std::unordered_map<std::uint32_t, std::uint32_t> peripheral_store;  // unmodelled registers
  std::uint32_t dbgmcu[4] = {};
  PinMux pin_mux{};
  bool swd_pins_released = false;
  bool nrst = false;
  // Set by the debugger's first use of the debug port, cleared by a power-on reset only:
  // PM0075 2.4.1 / RM0316 4.3.1 ask for a power-on reset, not a system reset, after
  // setting read protection with the debugger connected.
  bool debugger_attached = false;
};

Board::Board(const ChipInfo& chip, BoardOptions options)
    : chip_(chip), options_(std::move(options)), impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.flash.assign(chip.flash_size, 0xFF);
  m.option_bytes = chip.option_bytes_reset;
  m.system_memory.assign(chip.system_memory.size, 0);
  for (const auto& region : chip.ram)
    m.ram.emplace_back(region.size, 0);
  if (!options_.state_dir.empty()) {
    std::filesystem::create_directories(options_.state_dir);
    load_file(options_.state_dir / "flash.bin", m.flash);
    load_file(options_.state_dir / "option_bytes.bin", m.option_bytes);
  }

  // Factory-programmed values in system memory: flash size in KiB (16 bits) and the
  // 96-bit unique ID (X/Y wafer coordinates, wafer number, lot number; RM0090 39.1).
  store_le(&m.system_memory[chip.flash_size_reg - chip.system_memory.base], chip.flash_size / 1024,
           2);
  const std::uint32_t h = fnv1a(options_.serial) ^ (options_.uid_seed * 0x9E3779B9u);
  const std::uint32_t uid[3] = {0x00200000u | (h & 0xFFFF), 0x50460000u | ((h >> 16) & 0xFF),
                                0x4D495300u | (options_.uid_seed & 0xFF)};
  for (int i = 0; i < 3; ++i) {
    store_le(&m.system_memory[chip.uid_reg - chip.system_memory.base + 4 * i], uid[i], 4);
  }

  m.flash_controller = make_flash_controller(FlashContext{
      chip, clock_, counters_, m.flash, m.option_bytes,
      [this](std::uint32_t offset, std::uint32_t length) {
        impl_->core->invalidate_code(chip_.flash_base + offset, length);
        const std::uint32_t alias = chip_.flash_style == FlashStyle::f7 ? chip_.flash_alias : 0;
        impl_->core->invalidate_code(alias + offset, length);
      },
      [this] { return debugger_attached(); },
      // OBL_LAUNCH: the same system reset as AIRCR.SYSRESETREQ. Requesting it through the
      // core's AIRCR lets the core defer it to the end of the instruction when its own
      // store to FLASH_CR asked for it.
      [this] {
        CortexM& core = *impl_->core;
        const std::uint32_t prigroup = core.ppb_read(kAircr, 4) & kAircrPrigroup;
        core.ppb_write(kAircr, kAircrVectKey | prigroup | kAircrSysResetReq, 4);
      }});
  m.rcc = make_clock_control(chip);
  m.dp = make_sw_dp(chip, *this, clock_);
  m.core = std::make_unique<CortexM>(CortexM::Environment{
      chip, clock_, [this] { return impl_->rcc->sysclk_hz(); }, [this] { system_reset(); }});

  CortexM& core = *m.core;
  for (std::size_t i = 0; i < chip.ram.size(); ++i)
    core.map_ram(chip.ram[i].base, m.ram[i]);
  auto flash_write = [this](std::uint32_t addr, std::uint32_t value, unsigned size) {
    return bus_write(Master::cpu, addr, value, size);
  };
  core.map_flash(chip.flash_base, m.flash, flash_write);
  // Boot alias: with BOOT0 low the main flash also appears at 0 (RM0008 3.4, RM0090 2.4).
  // The F7 instead shows it on the ITCM interface at 0x00200000 and has ITCM RAM at 0.
  core.map_flash(chip.flash_style == FlashStyle::f7 ? chip.flash_alias : 0, m.flash, flash_write);
  auto io_read = [this](std::uint32_t addr, unsigned size) {
    return bus_read(Master::cpu, addr, size).value;
  };
  auto io_write = [this](std::uint32_t addr, std::uint32_t value, unsigned size) {
    bus_write(Master::cpu, addr, value, size);
  };
  // System memory and option bytes: read through the bus so the flash controller owns
  // the option bytes. One page-aligned window covers both.
  const std::uint32_t lo = std::min(chip.system_memory.base, chip.option_bytes.base) & ~0xFFFu;
  const std::uint32_t hi = (std::max(chip.system_memory.base + chip.system_memory.size,
                                     chip.option_bytes.base + chip.option_bytes.size) +
                            0xFFF) &
                           ~0xFFFu;
  core.map_io(lo, hi - lo, io_read, io_write);
  core.map_io(kPeripheralBase, kPeripheralEnd - kPeripheralBase, io_read, io_write);
  core.map_io(kPpbBase, kPpbEnd - kPpbBase, io_read, io_write);

  m.pin_mux = pin_mux_for(chip);
  reset_peripherals();
  m.flash_controller->reset();
  m.core->core_reset();
}

Board::~Board() = default;

SwDp& Board::swd() {
  return *impl_->dp;
}
CortexM& Board::core() {
  return *impl_->core;
}
FlashController& Board::flash_controller() {
  return *impl_->flash_controller;
}
std::span<const std::uint8_t> Board::flash() const {
  return impl_->flash;
}
std::span<const std::uint8_t> Board::option_bytes() const {
  return impl_->option_bytes;
}

void Board::set_nrst(bool asserted) {
  if (asserted == impl_->nrst) return;
  impl_->nrst = asserted;
  if (asserted) {
    // nRST low resets the whole system except the debug domain (RM0090 6.1.2) and keeps
    // the core in reset until it is released.
    impl_->flash_controller->reset();
    impl_->rcc->reset();
    reset_peripherals();
  }
  impl_->core->set_reset_held(asserted);
}

bool Board::nrst_asserted() const {
  return impl_->nrst;
}

void Board::advance(Picoseconds dt) {
  const Picoseconds until = clock_.now() + dt;
  if (powered_) impl_->core->run_until(until);
  clock_.advance_to(until);
}

void Board::system_reset() {
  impl_->flash_controller->reset();
  impl_->rcc->reset();
  reset_peripherals();
  if (!impl_->nrst) impl_->core->core_reset();
}

void Board::reset_peripherals() {
  Impl& m = *impl_;
  m.peripheral_store.clear();
  m.peripheral_store[m.pin_mux.swd_reg] = m.pin_mux.swd_reg_reset;
  m.peripheral_store[m.pin_mux.jumper_idr] = options_.swd_off_jumper ? 0 : 1u << 13;
  m.swd_pins_released = false;
  update_swd_pins();
}

void Board::update_swd_pins() {
  impl_->dp->set_pins_connected(powered_ && !impl_->swd_pins_released);
}

bool Board::swd_pins_connected() const {
  return powered_ && !impl_->swd_pins_released;
}

void Board::set_swd_off_jumper(bool fitted) {
  options_.swd_off_jumper = fitted;
  impl_->peripheral_store[impl_->pin_mux.jumper_idr] = fitted ? 0 : 1u << 13;
}

void Board::set_powered(bool on) {
  if (on == powered_) return;
  powered_ = on;
  update_swd_pins();
  if (!on) {
    save_state();
    return;
  }
  // Power-on reset: SRAM comes up with undefined contents (zeros here), the debug domain
  // and the whole system are reset.
  for (auto& r : impl_->ram)
    std::fill(r.begin(), r.end(), 0);
  std::fill(std::begin(impl_->dbgmcu), std::end(impl_->dbgmcu), 0);
  impl_->dp->power_on_reset();
  impl_->debugger_attached = false;
  impl_->core->debug_power_on_reset();
  system_reset();
}

void Board::power_cycle() {
  set_powered(false);
  set_powered(true);
}

void Board::save_state() const {
  if (options_.state_dir.empty()) return;
  save_file(options_.state_dir / "flash.bin", impl_->flash);
  save_file(options_.state_dir / "option_bytes.bin", impl_->option_bytes);
}

bool Board::debugger_attached() const {
  // The DP's debug power-up request counts even before the first AHB-AP access. A request
  // withdrawn before anything looked is missed: the SW-DP has no hook to report it.
  if (impl_->dp->debug_powered()) impl_->debugger_attached = true;
  return impl_->debugger_attached;
}

BusResponse Board::read(std::uint32_t addr, unsigned size) {
  impl_->debugger_attached = true;
  return bus_read(Master::debugger, addr, size);
}

BusResponse Board::write(std::uint32_t addr, std::uint32_t value, unsigned size) {
  impl_->debugger_attached = true;
  return bus_write(Master::debugger, addr, value, size);
}

BusResponse Board::bus_read(Master who, std::uint32_t addr, unsigned size) {
  Impl& m = *impl_;
  // Read protection shuts the debugger out of the main flash (both of its addresses) and,
  // on the F4/F7, the OTP area; the read ends in an AHB error, whose data is UNKNOWN
  // (ADIv5.2 C2.2.3) and 0 here (PM0075 2.4.1, RM0316 4.3.1 Table "Access status versus
  // protection level", RM0090 3.7.3 / RM0385 3.4.3 Table "Access versus read protection
  // level"). The CPU is not checked: its flash reads and fetches go straight to mapped
  // memory, so a CPU running while a debugger is attached still reads the flash, which
  // the silicon would refuse.
  if (who == Master::debugger && m.flash_controller->read_protection() != ReadProtection::level0 &&
      debugger_attached()) {
    const std::uint32_t alias = chip_.flash_style == FlashStyle::f7 ? chip_.flash_alias : 0;
    if (inside(addr, chip_.flash_base, chip_.flash_size) || inside(addr, alias, chip_.flash_size) ||
        inside(addr, chip_.otp.base, chip_.otp.size)) {
      return {BusStatus::error, 0, 0};
    }
  }
  for (std::size_t i = 0; i < chip_.ram.size(); ++i) {
    if (inside(addr, chip_.ram[i].base, chip_.ram[i].size)) {
      return {BusStatus::ok, load_le(&m.ram[i][addr - chip_.ram[i].base], size), 0};
    }
  }
  const std::uint32_t alias = chip_.flash_style == FlashStyle::f7 ? chip_.flash_alias : 0;
  if (inside(addr, chip_.flash_base, chip_.flash_size)) {
    return m.flash_controller->array_read(addr - chip_.flash_base, size);
  }
  if (inside(addr, alias, chip_.flash_size))
    return m.flash_controller->array_read(addr - alias, size);
  if (inside(addr, chip_.system_memory.base, chip_.system_memory.size)) {
    return {BusStatus::ok, load_le(&m.system_memory[addr - chip_.system_memory.base], size), 0};
  }
  if (inside(addr, chip_.option_bytes.base, chip_.option_bytes.size)) {
    return m.flash_controller->option_read(addr - chip_.option_bytes.base, size);
  }
  if (inside(addr, chip_.flash_regs, kRegisterBlock)) {
    return {BusStatus::ok, m.flash_controller->read(addr - chip_.flash_regs, size), 0};
  }
  if (inside(addr, chip_.rcc_regs, kRegisterBlock)) {
    return {BusStatus::ok, m.rcc->read(addr - chip_.rcc_regs, size), 0};
  }
  if (addr >= kPeripheralBase && addr < kPeripheralEnd) {
    auto it = m.peripheral_store.find(addr & ~3u);
    const std::uint32_t word = it == m.peripheral_store.end() ? 0 : it->second;
    return {BusStatus::ok,
            (word >> (8 * (addr & 3))) & (size == 4 ? 0xFFFFFFFF : (1u << (8 * size)) - 1), 0};
  }
  if (inside(addr, kDbgmcuBase, 0x10)) {
    const std::uint32_t word =
        addr < kDbgmcuBase + 4 ? chip_.dbgmcu_idcode : m.dbgmcu[(addr - kDbgmcuBase) / 4];
    return {BusStatus::ok,
            (word >> (8 * (addr & 3))) & (size == 4 ? 0xFFFFFFFF : (1u << (8 * size)) - 1), 0};
  }
  if (addr >= kPpbBase && addr < kPpbEnd) return {BusStatus::ok, m.core->ppb_read(addr, size), 0};
  return {BusStatus::error, 0, 0};
}

// Writes need no read-protection check here: flash program and erase go through the
// flash controller, which refuses them itself.
BusResponse Board::bus_write(Master, std::uint32_t addr, std::uint32_t value, unsigned size) {
  Impl& m = *impl_;
  for (std::size_t i = 0; i < chip_.ram.size(); ++i) {
    if (inside(addr, chip_.ram[i].base, chip_.ram[i].size)) {
      store_le(&m.ram[i][addr - chip_.ram[i].base], value, size);
      m.core->invalidate_code(addr, size);
      return {};
    }
  }
  const std::uint32_t alias = chip_.flash_style == FlashStyle::f7 ? chip_.flash_alias : 0;
  if (inside(addr, chip_.flash_base, chip_.flash_size)) {
    return m.flash_controller->array_write(addr - chip_.flash_base, value, size);
  }
  if (inside(addr, alias, chip_.flash_size)) {
    return m.flash_controller->array_write(addr - alias, value, size);
  }
  if (inside(addr, chip_.system_memory.base, chip_.system_memory.size)) return {};  // ROM
  if (inside(addr, chip_.option_bytes.base, chip_.option_bytes.size)) {
    return m.flash_controller->option_write(addr - chip_.option_bytes.base, value, size);
  }
  if (inside(addr, chip_.flash_regs, kRegisterBlock)) {
    m.flash_controller->write(addr - chip_.flash_regs, value, size);
    return {};
  }
  if (inside(addr, chip_.rcc_regs, kRegisterBlock)) {
    m.rcc->write(addr - chip_.rcc_regs, value, size);
    return {};
  }
  auto merge = [&](std::uint32_t old) {
    if (size == 4) return value;
    const unsigned shift = 8 * (addr & 3);
    const std::uint32_t mask = ((1u << (8 * size)) - 1) << shift;
    return (old & ~mask) | ((value << shift) & mask);
  };
  if (addr >= kPeripheralBase && addr < kPeripheralEnd) {
    auto& word = m.peripheral_store[addr & ~3u];
    word = merge(word);
    if ((addr & ~3u) == m.pin_mux.swd_reg) {
      m.swd_pins_released = releases_swd_pins(m.pin_mux, word);
      update_swd_pins();
    }
    return {};
  }
  if (inside(addr, kDbgmcuBase, 0x10)) {
    if (addr >= kDbgmcuBase + 4) {
      auto& word = m.dbgmcu[(addr - kDbgmcuBase) / 4];
      word = merge(word);
    }
    return {};
  }
  if (addr >= kPpbBase && addr < kPpbEnd) {
    m.core->ppb_write(addr, value, size);
    return {};
  }
  return {BusStatus::error, 0, 0};
}

}  // namespace probefarm::sim

#pragma once
// What every fake probe behind probe::UsbDevice shares (cmsis_dap_fake.hpp,
// stlink_fake.hpp): the descriptors, path and label, string descriptors and claiming that
// the drivers do not test, transfers a fake does not model failing like a USB error, and
// the little-endian fields of the probes' packets.
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "probe/usb.hpp"

namespace probefarm::probe::test {

class FakeUsbDevice : public UsbDevice {
 public:
  FakeUsbDevice(std::string path, std::string label)
      : path_(std::move(path)), label_(std::move(label)) {}

  const UsbDeviceDescriptor& descriptor() const override { return descriptor_; }
  const UsbConfiguration& configuration() const override { return config_; }
  const std::string& path() const override { return path_; }
  void set_label(std::string label) override { label_ = std::move(label); }
  const std::string& label() const override { return label_; }
  std::string read_string(std::uint8_t) override { return {}; }
  std::vector<std::uint8_t> read_string_raw(std::uint8_t) override { return {}; }
  void claim_interface(int) override {}

  std::size_t control_transfer(const UsbControlSetup&, std::span<std::uint8_t>,
                               std::chrono::milliseconds) override {
    unsupported("control");
  }
  std::size_t bulk_write(std::uint8_t, std::span<const std::uint8_t>,
                         std::chrono::milliseconds) override {
    unsupported("bulk");
  }
  std::size_t bulk_read(std::uint8_t, std::span<std::uint8_t>, std::chrono::milliseconds) override {
    unsupported("bulk");
  }
  std::size_t interrupt_write(std::uint8_t, std::span<const std::uint8_t>,
                              std::chrono::milliseconds) override {
    unsupported("interrupt");
  }
  std::size_t interrupt_read(std::uint8_t, std::span<std::uint8_t>,
                             std::chrono::milliseconds) override {
    unsupported("interrupt");
  }

 protected:
  [[noreturn]] static void unsupported(const char* kind) {
    throw Error(ErrorCategory::probe_io, std::string("fake: no ") + kind + " transfers");
  }

  // Interface 0 (alternate setting 0) of class `interface_class` with `endpoints`.
  void add_interface(std::uint8_t interface_class, std::vector<UsbEndpoint> endpoints) {
    UsbInterface itf;
    itf.number = 0;
    itf.interface_class = interface_class;
    itf.endpoints = std::move(endpoints);
    config_.interfaces.push_back(std::move(itf));
  }

  // Little-endian fields, written out here rather than taken from probe/bytes.hpp, so
  // that a fake does not decode with the code of the driver it tests.
  static std::uint16_t le16(std::span<const std::uint8_t> b, std::size_t at) {
    return static_cast<std::uint16_t>(b[at] | b[at + 1] << 8);
  }
  static std::uint32_t le32(std::span<const std::uint8_t> b, std::size_t at) {
    return b[at] | b[at + 1] << 8 | b[at + 2] << 16 | static_cast<std::uint32_t>(b[at + 3]) << 24;
  }
  static void put_le32(std::span<std::uint8_t> b, std::size_t at, std::uint32_t v) {
    for (std::size_t i = 0; i < 4; ++i)
      b[at + i] = static_cast<std::uint8_t>(v >> (8 * i));
  }
  static void append_le32(std::vector<std::uint8_t>& b, std::uint32_t v) {
    b.resize(b.size() + 4);
    put_le32(b, b.size() - 4, v);
  }

  UsbDeviceDescriptor descriptor_;
  UsbConfiguration config_;

 private:
  std::string path_;
  std::string label_;
};

}  // namespace probefarm::probe::test

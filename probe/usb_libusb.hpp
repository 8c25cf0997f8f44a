#pragma once
// The libusb-1.0 backend of UsbContext/UsbDevice. libusb itself stays in usb_libusb.cpp.
#include <memory>

#include "probe/usb.hpp"

namespace probefarm::probe {

// A new libusb context (libusb_init; libusb_exit when the last device opened from it and the
// context itself are gone). Throws Error(probe_io) if libusb cannot start.
std::shared_ptr<UsbContext> make_libusb_context();

// The process-wide context, created on first use.
std::shared_ptr<UsbContext> default_usb_context();

}  // namespace probefarm::probe

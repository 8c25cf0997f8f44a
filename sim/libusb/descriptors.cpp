// Descriptor parsing: raw bytes from the server into libusb's structures.
// Layouts: USB 2.0 9.6.1 (device), 9.6.3 (configuration), 9.6.5 (interface),
// 9.6.6 (endpoint). Unknown descriptors between them are kept as `extra`, as libusb does.
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "standin.hpp"

namespace probefarm::sim::standin {
namespace {

constexpr std::uint8_t kDescInterface = 4;
constexpr std::uint8_t kDescEndpoint = 5;

std::uint16_t le16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>(p[0] | p[1] << 8);
}

// Copies [begin, end) into a malloc'd buffer for an `extra` field.
void set_extra(const unsigned char** extra, int* length, const std::uint8_t* begin,
               const std::uint8_t* end) {
  *extra = nullptr;
  *length = 0;
  if (end <= begin) return;
  auto* p = static_cast<unsigned char*>(std::malloc(static_cast<std::size_t>(end - begin)));
  std::memcpy(p, begin, static_cast<std::size_t>(end - begin));
  *extra = p;
  *length = static_cast<int>(end - begin);
}

struct AltBuild {
  libusb_interface_descriptor desc{};
  std::vector<libusb_endpoint_descriptor> endpoints;
};

}  // namespace

void parse_device_descriptor(const std::vector<std::uint8_t>& raw, libusb_device_descriptor* d) {
  std::memset(d, 0, sizeof(*d));
  if (raw.size() < 18) return;
  const std::uint8_t* p = raw.data();
  d->bLength = p[0];
  d->bDescriptorType = p[1];
  d->bcdUSB = le16(p + 2);
  d->bDeviceClass = p[4];
  d->bDeviceSubClass = p[5];
  d->bDeviceProtocol = p[6];
  d->bMaxPacketSize0 = p[7];
  d->idVendor = le16(p + 8);
  d->idProduct = le16(p + 10);
  d->bcdDevice = le16(p + 12);
  d->iManufacturer = p[14];
  d->iProduct = p[15];
  d->iSerialNumber = p[16];
  d->bNumConfigurations = p[17];
}

int parse_config(const std::vector<std::uint8_t>& raw, libusb_config_descriptor** out) {
  if (raw.size() < 9 || raw[1] != LIBUSB_DT_CONFIG || raw[0] < 9) return LIBUSB_ERROR_IO;
  const std::uint8_t* p = raw.data();
  const std::uint8_t* end = p + std::min<std::size_t>(raw.size(), le16(p + 2));

  // Walk the descriptor chain once, grouping alternate settings by interface number.
  std::vector<std::vector<AltBuild>> interfaces;
  std::vector<int> interface_numbers;
  const std::uint8_t* extra_begin = p + p[0];
  auto* config =
      static_cast<libusb_config_descriptor*>(std::calloc(1, sizeof(libusb_config_descriptor)));
  // Extras are assigned once the next interface/endpoint (or the end) bounds them, and
  // through indices: the vectors being built may still reallocate.
  struct Pending {
    int iface = -1, alt = -1, ep = -1;  // -1/-1/-1: the configuration itself
  } owner;
  struct ExtraSpan {
    Pending owner;
    const std::uint8_t* begin;
    const std::uint8_t* end;
  };
  std::vector<ExtraSpan> extras;

  const std::uint8_t* q = extra_begin;
  while (q + 2 <= end) {
    std::uint8_t len = q[0];
    if (len < 2 || q + len > end) break;
    std::uint8_t type = q[1];
    if ((type == kDescInterface && len >= 9) || (type == kDescEndpoint && len >= 7)) {
      extras.push_back({owner, extra_begin, q});
      if (type == kDescInterface) {
        int number = q[2];
        int idx = -1;
        for (std::size_t i = 0; i < interface_numbers.size(); ++i)
          if (interface_numbers[i] == number) idx = static_cast<int>(i);
        if (idx < 0) {
          interface_numbers.push_back(number);
          interfaces.emplace_back();
          idx = static_cast<int>(interfaces.size() - 1);
        }
        AltBuild alt;
        auto& d = alt.desc;
        d.bLength = q[0];
        d.bDescriptorType = q[1];
        d.bInterfaceNumber = q[2];
        d.bAlternateSetting = q[3];
        d.bNumEndpoints = q[4];
        d.bInterfaceClass = q[5];
        d.bInterfaceSubClass = q[6];
        d.bInterfaceProtocol = q[7];
        d.iInterface = q[8];
        interfaces[static_cast<std::size_t>(idx)].push_back(alt);
        owner = {idx, static_cast<int>(interfaces[static_cast<std::size_t>(idx)].size() - 1), -1};
      } else if (owner.iface >= 0) {
        auto& alt =
            interfaces[static_cast<std::size_t>(owner.iface)][static_cast<std::size_t>(owner.alt)];
        libusb_endpoint_descriptor e{};
        e.bLength = q[0];
        e.bDescriptorType = q[1];
        e.bEndpointAddress = q[2];
        e.bmAttributes = q[3];
        e.wMaxPacketSize = le16(q + 4);
        e.bInterval = q[6];
        if (len >= 9) {  // audio endpoints carry two more fields
          e.bRefresh = q[7];
          e.bSynchAddress = q[8];
        }
        alt.endpoints.push_back(e);
        owner.ep = static_cast<int>(alt.endpoints.size() - 1);
      }
      extra_begin = q + len;
    }
    q += len;
  }
  extras.push_back({owner, extra_begin, q});

  config->bLength = p[0];
  config->bDescriptorType = p[1];
  config->wTotalLength = le16(p + 2);
  config->bNumInterfaces = static_cast<std::uint8_t>(interfaces.size());
  config->bConfigurationValue = p[5];
  config->iConfiguration = p[6];
  config->bmAttributes = p[7];
  config->MaxPower = p[8];

  auto* ifs = static_cast<libusb_interface*>(
      std::calloc(std::max<std::size_t>(1, interfaces.size()), sizeof(libusb_interface)));
  for (std::size_t i = 0; i < interfaces.size(); ++i) {
    auto* alts = static_cast<libusb_interface_descriptor*>(
        std::calloc(interfaces[i].size(), sizeof(libusb_interface_descriptor)));
    for (std::size_t a = 0; a < interfaces[i].size(); ++a) {
      alts[a] = interfaces[i][a].desc;
      auto& eps = interfaces[i][a].endpoints;
      // bNumEndpoints counts what was actually found, so callers never index past it.
      alts[a].bNumEndpoints = static_cast<std::uint8_t>(eps.size());
      if (!eps.empty()) {
        auto* e = static_cast<libusb_endpoint_descriptor*>(
            std::calloc(eps.size(), sizeof(libusb_endpoint_descriptor)));
        std::memcpy(e, eps.data(), eps.size() * sizeof(libusb_endpoint_descriptor));
        alts[a].endpoint = e;
      }
    }
    ifs[i].altsetting = alts;
    ifs[i].num_altsetting = static_cast<int>(interfaces[i].size());
  }
  config->interface = ifs;

  for (const auto& x : extras) {
    if (x.owner.iface < 0) {
      set_extra(&config->extra, &config->extra_length, x.begin, x.end);
      continue;
    }
    auto& alt =
        const_cast<libusb_interface_descriptor&>(ifs[x.owner.iface].altsetting[x.owner.alt]);
    if (x.owner.ep < 0)
      set_extra(&alt.extra, &alt.extra_length, x.begin, x.end);
    else {
      auto& e = const_cast<libusb_endpoint_descriptor&>(alt.endpoint[x.owner.ep]);
      set_extra(&e.extra, &e.extra_length, x.begin, x.end);
    }
  }
  *out = config;
  return LIBUSB_SUCCESS;
}

void free_config(libusb_config_descriptor* config) {
  if (!config) return;
  for (int i = 0; i < config->bNumInterfaces; ++i) {
    const libusb_interface& itf = config->interface[i];
    for (int a = 0; a < itf.num_altsetting; ++a) {
      const libusb_interface_descriptor& alt = itf.altsetting[a];
      for (int e = 0; e < alt.bNumEndpoints; ++e)
        std::free(const_cast<unsigned char*>(alt.endpoint[e].extra));
      std::free(const_cast<libusb_endpoint_descriptor*>(alt.endpoint));
      std::free(const_cast<unsigned char*>(alt.extra));
    }
    std::free(const_cast<libusb_interface_descriptor*>(itf.altsetting));
  }
  std::free(const_cast<libusb_interface*>(config->interface));
  std::free(const_cast<unsigned char*>(config->extra));
  std::free(config);
}

}  // namespace probefarm::sim::standin

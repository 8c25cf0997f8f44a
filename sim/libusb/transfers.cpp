// Synchronous and asynchronous transfers (libusb-1.0 API reference, "Synchronous device
// I/O", "Asynchronous device I/O", "Polling and timing").
//
// The simulator answers every request at once, so there is no background I/O: an OUT or
// control transfer is carried out when it is submitted, an IN is polled when events are
// handled. Completion callbacks only ever run inside libusb_handle_events*(), as the API
// promises. An IN the device NAKs is retried with a short backoff until its timeout.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>

#include "standin.hpp"

using namespace probefarm::sim::standin;
namespace proto = probefarm::sim::protocol;

namespace {

using namespace std::chrono_literals;

// Retry spacing for NAKed INs: start short (a response usually arrives right after the
// command that causes it), back off so an idle wait does not spin a core.
constexpr auto kFirstRetry = 20us;
constexpr auto kMaxRetry = 1ms;
// libusb_handle_events() without a timeout waits at most this long (libusb API
// reference, libusb_handle_events: "timeout of 60 seconds").
constexpr auto kDefaultEventTimeout = 60s;

struct TransferPriv {
  bool submitted = false;
  bool done = false;  // result below is final, callback pending
  bool cancel_requested = false;
  libusb_transfer_status result = LIBUSB_TRANSFER_COMPLETED;
  bool has_deadline = false;
  SteadyClock::time_point deadline{};
};

constexpr std::size_t kPrivSize = (sizeof(TransferPriv) + alignof(std::max_align_t) - 1) /
                                  alignof(std::max_align_t) * alignof(std::max_align_t);

TransferPriv* priv_of(libusb_transfer* t) {
  return std::launder(reinterpret_cast<TransferPriv*>(reinterpret_cast<char*>(t) - kPrivSize));
}

libusb_transfer_status transfer_status(proto::Status s) {
  switch (s) {
    case proto::Status::ok:
      return LIBUSB_TRANSFER_COMPLETED;
    case proto::Status::stall:
      return LIBUSB_TRANSFER_STALL;
    case proto::Status::no_device:
    case proto::Status::not_open:
      return LIBUSB_TRANSFER_NO_DEVICE;
    default:
      return LIBUSB_TRANSFER_ERROR;
  }
}

proto::Status do_out(libusb_device_handle* h, unsigned char ep, const unsigned char* data,
                     int length, int* actual) {
  proto::Writer w;
  w.u32(h->dev->info.id);
  w.u8(ep);
  w.bytes(std::span<const std::uint8_t>(data, static_cast<std::size_t>(std::max(0, length))));
  Reply r = request(h->dev->ctx, proto::Op::out, w.buffer());
  *actual = 0;
  if (r.status == proto::Status::ok) {
    proto::Reader rd(r.payload);
    *actual =
        static_cast<int>(std::min<std::uint32_t>(rd.u32(), static_cast<std::uint32_t>(length)));
  }
  return r.status;
}

proto::Status do_in(libusb_device_handle* h, unsigned char ep, unsigned char* data, int length,
                    int* actual) {
  proto::Writer w;
  w.u32(h->dev->info.id);
  w.u8(ep);
  w.u32(static_cast<std::uint32_t>(std::max(0, length)));
  Reply r = request(h->dev->ctx, proto::Op::in, w.buffer());
  *actual = 0;
  if (r.status == proto::Status::ok) {
    proto::Reader rd(r.payload);
    auto bytes = rd.bytes();
    std::size_t n = std::min<std::size_t>(bytes.size(), static_cast<std::size_t>(length));
    if (n) std::memcpy(data, bytes.data(), n);
    *actual = static_cast<int>(n);
  }
  return r.status;
}

int sync_transfer(libusb_device_handle* h, unsigned char ep, unsigned char* data, int length,
                  int* transferred, unsigned int timeout_ms) {
  if (!h || length < 0) return LIBUSB_ERROR_INVALID_PARAM;
  if (transferred) *transferred = 0;
  int actual = 0;
  if (!(ep & LIBUSB_ENDPOINT_IN)) {
    auto s = do_out(h, ep, data, length, &actual);
    if (transferred) *transferred = actual;
    return to_libusb_error(s);
  }
  const auto deadline = SteadyClock::now() + std::chrono::milliseconds(timeout_ms);
  auto delay = std::chrono::duration_cast<SteadyClock::duration>(kFirstRetry);
  for (;;) {
    auto s = do_in(h, ep, data, length, &actual);
    if (s != proto::Status::nak) {
      if (transferred) *transferred = actual;
      return to_libusb_error(s);
    }
    auto now = SteadyClock::now();
    if (timeout_ms != 0 && now >= deadline) return LIBUSB_ERROR_TIMEOUT;
    std::this_thread::sleep_for(timeout_ms != 0 ? std::min(delay, deadline - now) : delay);
    delay = std::min<SteadyClock::duration>(delay * 2, kMaxRetry);
  }
}

// Carries out an OUT or control transfer at submission; records the result for the
// callback that handle_events will deliver.
void perform_now(libusb_transfer* t, TransferPriv* p) {
  if (t->type == LIBUSB_TRANSFER_TYPE_CONTROL) {
    const unsigned char* s = t->buffer;
    auto w_length = static_cast<std::uint16_t>(s[6] | s[7] << 8);
    int r = control(t->dev_handle, s[0], s[1], static_cast<std::uint16_t>(s[2] | s[3] << 8),
                    static_cast<std::uint16_t>(s[4] | s[5] << 8),
                    t->buffer + LIBUSB_CONTROL_SETUP_SIZE, w_length);
    t->actual_length = std::max(0, r);
    p->result = r >= 0                        ? LIBUSB_TRANSFER_COMPLETED
                : r == LIBUSB_ERROR_PIPE      ? LIBUSB_TRANSFER_STALL
                : r == LIBUSB_ERROR_NO_DEVICE ? LIBUSB_TRANSFER_NO_DEVICE
                                              : LIBUSB_TRANSFER_ERROR;
  } else {
    int actual = 0;
    auto s = do_out(t->dev_handle, t->endpoint, t->buffer, t->length, &actual);
    t->actual_length = actual;
    p->result = transfer_status(s);
  }
  p->done = true;
}

// One round over the pending transfers, in submission order. Returns the ones that are
// finished, removed from the pending list. Called with ctx->mu held.
std::vector<libusb_transfer*> collect_finished(libusb_context* ctx,
                                               SteadyClock::time_point* next_deadline) {
  std::vector<libusb_transfer*> finished;
  std::set<std::pair<libusb_device_handle*, unsigned char>> nakked;
  const auto now = SteadyClock::now();
  for (auto it = ctx->pending.begin(); it != ctx->pending.end();) {
    libusb_transfer* t = *it;
    TransferPriv* p = priv_of(t);
    if (!p->done && p->cancel_requested) {
      p->done = true;
      p->result = LIBUSB_TRANSFER_CANCELLED;
    }
    // A later IN on an endpoint that just NAKed must not overtake the earlier one.
    if (!p->done && !nakked.count({t->dev_handle, t->endpoint})) {
      int actual = 0;
      auto s = do_in(t->dev_handle, t->endpoint, t->buffer, t->length, &actual);
      if (s == proto::Status::nak) {
        nakked.insert({t->dev_handle, t->endpoint});
      } else {
        t->actual_length = actual;
        p->result = transfer_status(s);
        if (p->result == LIBUSB_TRANSFER_COMPLETED && (t->flags & LIBUSB_TRANSFER_SHORT_NOT_OK) &&
            actual < t->length)
          p->result = LIBUSB_TRANSFER_ERROR;
        p->done = true;
      }
    }
    if (!p->done && p->has_deadline) {
      if (now >= p->deadline) {
        p->done = true;
        p->result = LIBUSB_TRANSFER_TIMED_OUT;
      } else {
        *next_deadline = std::min(*next_deadline, p->deadline);
      }
    }
    if (p->done) {
      p->submitted = false;
      finished.push_back(t);
      it = ctx->pending.erase(it);
    } else {
      ++it;
    }
  }
  return finished;
}

}  // namespace

namespace probefarm::sim::standin {

void forget_transfers(libusb_device_handle* h) {
  libusb_context* ctx = h->dev->ctx;
  std::lock_guard lock(ctx->mu);
  ctx->pending.remove_if([h](libusb_transfer* t) {
    if (t->dev_handle != h) return false;
    priv_of(t)->submitted = false;
    return true;
  });
}

}  // namespace probefarm::sim::standin

extern "C" {

struct libusb_transfer* libusb_alloc_transfer(int iso_packets) {
  if (iso_packets < 0) return nullptr;
  std::size_t size = kPrivSize + sizeof(libusb_transfer) +
                     static_cast<std::size_t>(iso_packets) * sizeof(libusb_iso_packet_descriptor);
  auto* base = static_cast<char*>(std::calloc(1, size));
  if (!base) return nullptr;
  new (base) TransferPriv;
  auto* t = reinterpret_cast<libusb_transfer*>(base + kPrivSize);
  t->num_iso_packets = iso_packets;
  return t;
}

void libusb_free_transfer(struct libusb_transfer* t) {
  if (!t) return;
  if ((t->flags & LIBUSB_TRANSFER_FREE_BUFFER) && t->buffer) std::free(t->buffer);
  TransferPriv* p = priv_of(t);
  p->~TransferPriv();
  std::free(reinterpret_cast<char*>(p));
}

int libusb_submit_transfer(struct libusb_transfer* t) {
  if (!t || !t->dev_handle) return LIBUSB_ERROR_INVALID_PARAM;
  switch (t->type) {
    case LIBUSB_TRANSFER_TYPE_CONTROL:
      if (t->length < static_cast<int>(LIBUSB_CONTROL_SETUP_SIZE))
        return LIBUSB_ERROR_INVALID_PARAM;
      break;
    case LIBUSB_TRANSFER_TYPE_BULK:
    case LIBUSB_TRANSFER_TYPE_INTERRUPT:
      break;
    default:
      return LIBUSB_ERROR_NOT_SUPPORTED;  // isochronous, bulk streams
  }
  libusb_context* ctx = t->dev_handle->dev->ctx;
  std::lock_guard lock(ctx->mu);
  TransferPriv* p = priv_of(t);
  if (p->submitted) return LIBUSB_ERROR_BUSY;
  *p = TransferPriv{};
  p->submitted = true;
  t->actual_length = 0;
  if (t->timeout) {
    p->has_deadline = true;
    p->deadline = SteadyClock::now() + std::chrono::milliseconds(t->timeout);
  }
  if (t->type == LIBUSB_TRANSFER_TYPE_CONTROL || !(t->endpoint & LIBUSB_ENDPOINT_IN)) {
    perform_now(t, p);
    if (p->result == LIBUSB_TRANSFER_NO_DEVICE) {
      p->submitted = false;
      return LIBUSB_ERROR_NO_DEVICE;
    }
  }
  ctx->pending.push_back(t);
  return LIBUSB_SUCCESS;
}

int libusb_cancel_transfer(struct libusb_transfer* t) {
  if (!t || !t->dev_handle) return LIBUSB_ERROR_INVALID_PARAM;
  libusb_context* ctx = t->dev_handle->dev->ctx;
  std::lock_guard lock(ctx->mu);
  TransferPriv* p = priv_of(t);
  if (!p->submitted || p->cancel_requested) return LIBUSB_ERROR_NOT_FOUND;
  p->cancel_requested = true;
  return LIBUSB_SUCCESS;
}

int libusb_handle_events_timeout_completed(libusb_context* ctx, struct timeval* tv,
                                           int* completed) {
  ctx = resolve(ctx);
  if (!ctx) return LIBUSB_ERROR_INVALID_PARAM;
  auto wait = tv ? std::chrono::seconds(tv->tv_sec) + std::chrono::microseconds(tv->tv_usec)
                 : std::chrono::duration_cast<std::chrono::microseconds>(kDefaultEventTimeout);
  const auto deadline = SteadyClock::now() + wait;
  auto delay = std::chrono::duration_cast<SteadyClock::duration>(kFirstRetry);
  for (;;) {
    if (completed && *completed) return LIBUSB_SUCCESS;
    std::vector<libusb_transfer*> finished;
    auto next = deadline;
    {
      std::lock_guard lock(ctx->mu);
      finished = collect_finished(ctx, &next);
    }
    if (!finished.empty()) {
      // Outside the lock: callbacks resubmit, free and cancel transfers.
      for (libusb_transfer* t : finished) {
        t->status = priv_of(t)->result;
        bool free_after = t->flags & LIBUSB_TRANSFER_FREE_TRANSFER;
        if (t->callback) t->callback(t);
        if (free_after) libusb_free_transfer(t);
      }
      return LIBUSB_SUCCESS;
    }
    auto now = SteadyClock::now();
    if (now >= deadline) return LIBUSB_SUCCESS;
    std::this_thread::sleep_for(std::min({delay, next - now, deadline - now}));
    delay = std::min<SteadyClock::duration>(delay * 2, kMaxRetry);
  }
}

int libusb_handle_events_timeout(libusb_context* ctx, struct timeval* tv) {
  return libusb_handle_events_timeout_completed(ctx, tv, nullptr);
}

int libusb_handle_events(libusb_context* ctx) {
  return libusb_handle_events_timeout_completed(ctx, nullptr, nullptr);
}

int libusb_handle_events_completed(libusb_context* ctx, int* completed) {
  return libusb_handle_events_timeout_completed(ctx, nullptr, completed);
}

int libusb_get_next_timeout(libusb_context*, struct timeval*) {
  return 0;  // no file descriptors to poll: the application never needs to wake us
}

int libusb_bulk_transfer(libusb_device_handle* h, unsigned char endpoint, unsigned char* data,
                         int length, int* transferred, unsigned int timeout) {
  return sync_transfer(h, endpoint, data, length, transferred, timeout);
}

int libusb_interrupt_transfer(libusb_device_handle* h, unsigned char endpoint, unsigned char* data,
                              int length, int* transferred, unsigned int timeout) {
  return sync_transfer(h, endpoint, data, length, transferred, timeout);
}

int libusb_control_transfer(libusb_device_handle* h, uint8_t request_type, uint8_t bRequest,
                            uint16_t wValue, uint16_t wIndex, unsigned char* data, uint16_t wLength,
                            unsigned int) {
  return control(h, request_type, bRequest, wValue, wIndex, data, wLength);
}

}  // extern "C"

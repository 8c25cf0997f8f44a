#pragma once
// What a probe's debug cable reaches on a board: the SWD pins, nRST, and the board's
// virtual clock. Probe firmware models (CMSIS-DAP, later ST-Link) only see this.
#include "clock.hpp"

namespace probefarm::sim {

class SwDp;

class TargetPort {
 public:
  virtual ~TargetPort() = default;
  virtual SwDp& swd() = 0;
  // nRST as driven by the probe (open drain: true = pulled low).
  virtual void set_nrst(bool asserted) = 0;
  // nRST level as sensed on the pin (true = low), the board may hold it low itself.
  virtual bool nrst_asserted() const = 0;
  // Time passes on the wire (SWD bits, USB frames). The target keeps running meanwhile.
  virtual void advance(Picoseconds dt) = 0;
  virtual Picoseconds now() const = 0;
  virtual Counters& counters() = 0;
  // Target supply as seen on the probe's VTref pin, in millivolts.
  virtual unsigned vtref_mv() const = 0;
};

}  // namespace probefarm::sim

#include "probe/cmsis_dap.hpp"

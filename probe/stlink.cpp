#include "probe/stlink.hpp"

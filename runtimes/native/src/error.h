// evj::Error: the one exception type inside the native core; c_api.cpp turns it into a status + one line.
#pragma once

#include <stdexcept>
#include <string>

#include "edge_vljepa.h"

namespace evj {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
  Error(evj_status status, const std::string& message) : std::runtime_error(message), status(status) {}
  evj_status status = EVJ_ERR_INVALID_ARGUMENT;
};

}  // namespace evj

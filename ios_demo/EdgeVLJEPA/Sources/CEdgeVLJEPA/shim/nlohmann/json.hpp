// Makes `#include <nlohmann/json.hpp>` (what the native core writes) work with nlohmann/json's Swift
// package, whose public header folder is single_include/nlohmann itself (so the header is reached as
// <json.hpp> there). `include_next` skips this file and takes the next <nlohmann/json.hpp> on the
// search path when a layout provides one.
#pragma once
#if __has_include_next(<nlohmann/json.hpp>)
#include_next <nlohmann/json.hpp>
#else
#include <json.hpp>
#endif

// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the cluster-file loader. Whatever the text, load_string
// either returns a config or throws config_error with well-formed diagnostics;
// anything else escaping (a yaml-cpp exception, std::out_of_range, ...) would take
// troupe-node down with a stack trace instead of a compiler-style message, so it
// traps. A config that loads must survive to_yaml -> load_string unchanged, since
// troupe-node --check-config prints exactly that text for people to reuse.
#include <troupe/conf/load.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>
#include <string_view>

namespace {

using namespace troupe::conf;

[[noreturn]] void fail(const char* what, const std::string& detail) {
    std::fprintf(stderr, "config_fuzz: %s\n%s\n", what, detail.c_str());
    __builtin_trap();
}

void check_diagnostics(const config_error& e) {
    if (e.diagnostics().empty()) {
        fail("config_error without diagnostics", e.what());
    }
    for (const auto& d : e.diagnostics()) {
        if (d.line < 0 || d.column < 0 || (d.line == 0 && d.column != 0)) {
            fail("diagnostic with a bad position", d.str());
        }
        if (d.message.empty()) {
            fail("diagnostic without a message", d.str());
        }
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    cluster_config config;
    try {
        config = load_string(text, "fuzz.yaml");
    } catch (const config_error& e) {
        check_diagnostics(e);
        return 0;
    } catch (const std::exception& e) {
        fail("load_string threw something other than config_error", e.what());
    } catch (...) {
        fail("load_string threw a non-exception", "");
    }

    const std::string yaml = to_yaml(config);
    cluster_config again;
    try {
        again = load_string(yaml, "to_yaml");
    } catch (const std::exception& e) {
        fail("to_yaml output does not load", yaml + "---\n" + e.what());
    }
    const std::string yaml_again = to_yaml(again);
    if (yaml_again != yaml) {
        fail("to_yaml -> load_string -> to_yaml changed the text", yaml + "---\n" + yaml_again);
    }
    return 0;
}

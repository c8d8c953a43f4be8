// SPDX-License-Identifier: Apache-2.0
#include <troupe/engine/send_result.hpp>

namespace troupe::engine {

std::string send_result::describe() const {
    if (failures.empty()) {
        return "ok (" + std::to_string(destinations) + " destination(s))";
    }
    std::string out;
    for (const auto& f : failures) {
        if (!out.empty()) {
            out += "; ";
        }
        out += f.member.name.empty() ? f.member.endpoint() : f.member.name + " (" + f.member.endpoint() + ")";
        out += ": " + f.ec.message();
        if (!f.detail.empty() && f.detail != f.ec.message()) {
            out += ": " + f.detail;
        }
    }
    return out;
}

} // namespace troupe::engine

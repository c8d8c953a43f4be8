// SPDX-License-Identifier: Apache-2.0
#include <troupe/membership/failure_detector.hpp>

namespace troupe::membership {

namespace {

std::string ms(std::chrono::steady_clock::duration d) {
    return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()) + "ms";
}

} // namespace

void detector_actions::append(detector_actions&& other) {
    changes.insert(changes.end(), other.changes.begin(), other.changes.end());
    verify.insert(verify.end(), other.verify.begin(), other.verify.end());
    connect.insert(connect.end(), other.connect.begin(), other.connect.end());
    answer_heartbeat = answer_heartbeat || other.answer_heartbeat;
}

failure_detector::failure_detector(member_id self, std::chrono::milliseconds drop_time)
    : self_(self), drop_time_(drop_time) {}

std::optional<failure_detector::member_info> failure_detector::info(const member_id& id) const {
    auto it = infos_.find(id);
    if (it == infos_.end()) {
        return std::nullopt;
    }
    return it->second;
}

detector_actions failure_detector::heard(const heartbeat& hb, clock::time_point now) {
    detector_actions out;
    if (hb.id == self_) {
        return out;
    }
    if (hb.leaving) {
        return leaving(hb.id, "leaving heartbeat", now);
    }
    auto& inf = info_for(hb.id);
    inf.last_heard = now;
    inf.heartbeats = true;
    const auto e = table_.find(hb.id);
    if (!e) {
        // Someone new (or a new incarnation at a known endpoint): admit it only
        // through a TCP handshake, and beat back at once so it learns of us
        // without waiting a whole period.
        out.connect.emplace_back(hb.host, hb.port);
        out.answer_heartbeat = true;
        return out;
    }
    switch (e->m.state) {
    case member_state::alive:
        break;
    case member_state::suspect:
        if (!inf.verifying) {
            ++stats_.false_suspicions_avoided;
            if (auto m = table_.set_state(hb.id, member_state::alive, now)) {
                m->reason = "heartbeat resumed";
                out.changes.push_back(*m);
            }
        }
        break;
    case member_state::gone:
        // Back after a partition or a freeze: readmit it through a handshake.
        out.connect.emplace_back(hb.host, hb.port);
        out.answer_heartbeat = true;
        break;
    case member_state::left:
        break;
    }
    return out;
}

detector_actions failure_detector::connected(const member& m, clock::time_point now) {
    detector_actions out;
    auto changes = table_.mark_alive(m, now);
    for (auto& c : changes) {
        if (c.id == m.id) {
            c.reason = "handshake completed";
        } else {
            c.reason = "restarted: a new incarnation answers at " + c.endpoint();
            ++stats_.removals["restarted"];
        }
        out.changes.push_back(c);
    }
    auto& inf = info_for(m.id);
    inf.last_heard = now; // a handshake is as good as a heartbeat
    inf.verifying = false;
    return out;
}

detector_actions failure_detector::suspect(const member_id& id, const std::string& why,
                                           clock::time_point now) {
    detector_actions out;
    const auto e = table_.find(id);
    if (!e) {
        return out;
    }
    auto& inf = info_for(id);
    if (e->m.state == member_state::suspect) {
        if (!inf.verifying) {
            inf.verifying = true;
            out.verify.push_back(e->m);
        }
        return out;
    }
    if (e->m.state != member_state::alive) {
        return out;
    }
    ++stats_.suspicions;
    ++inf.suspicions;
    inf.suspected_because = why;
    inf.suspected_at = now;
    inf.verifying = true;
    if (auto m = table_.set_state(id, member_state::suspect, now)) {
        m->reason = why;
        out.changes.push_back(*m);
        out.verify.push_back(*m);
    }
    return out;
}

detector_actions failure_detector::disconnected(const member_id& id, const std::string& reason,
                                                clock::time_point now) {
    return suspect(id, "connection lost: " + reason, now);
}

detector_actions failure_detector::send_failed(const member_id& id, const std::string& reason,
                                               clock::time_point now) {
    return suspect(id, "send failed: " + reason, now);
}

detector_actions failure_detector::leaving(const member_id& id, const std::string& reason,
                                           clock::time_point now) {
    detector_actions out;
    const auto e = table_.find(id);
    if (!e || (e->m.state != member_state::alive && e->m.state != member_state::suspect)) {
        return out;
    }
    if (auto m = table_.set_state(id, member_state::left, now)) {
        ++stats_.removals["left"];
        m->reason = reason;
        out.changes.push_back(*m);
    }
    info_for(id).verifying = false;
    return out;
}

detector_actions failure_detector::verified(const member_id& id, bool alive, const std::string& reason,
                                            clock::duration took, clock::time_point now) {
    detector_actions out;
    auto& inf = info_for(id);
    inf.verifying = false;
    const auto e = table_.find(id);
    if (!e || e->m.state != member_state::suspect) {
        return out; // it reconnected or left meanwhile
    }
    if (alive) {
        ++stats_.false_suspicions_avoided;
        inf.last_heard = now; // an answered PING is as good as a heartbeat
        if (auto m = table_.set_state(id, member_state::alive, now)) {
            m->reason = "verified alive over TCP in " + ms(took) + " (suspected: " + inf.suspected_because + ")";
            out.changes.push_back(*m);
        }
    } else {
        ++stats_.removals["verification_failed"];
        if (auto m = table_.set_state(id, member_state::gone, now)) {
            m->reason = "suspected (" + inf.suspected_because + "), verification failed after " + ms(took) +
                        ": " + reason;
            out.changes.push_back(*m);
        }
    }
    return out;
}

detector_actions failure_detector::tick(clock::time_point now) {
    detector_actions out;
    for (const auto& e : table_.all()) {
        if (e.m.state != member_state::alive) {
            continue;
        }
        auto it = infos_.find(e.m.id);
        if (it == infos_.end() || !it->second.heartbeats) {
            continue; // known over TCP only: its connection's keep-alive watches it
        }
        const auto silent = now - it->second.last_heard;
        if (silent > drop_time_) {
            out.append(suspect(e.m.id, "no heartbeat for " + ms(silent), now));
        }
    }
    return out;
}

} // namespace troupe::membership

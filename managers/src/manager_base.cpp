// SPDX-License-Identifier: Apache-2.0
#include "manager_base.hpp"

#include "log.hpp"
#include "request_scope_state.hpp"

#include <nlohmann/json.hpp>
#include <openssl/rand.h>

#include <random>
#include <sstream>

namespace troupe::managers {

session_manager::~session_manager() = default;

std::string session_manager::begin_failure(const request_info& request, boost::system::error_code ec) {
    if (ec == errc::session_unavailable) {
        return "session " + std::string(request.cookie_id) +
               " exists in the cluster but could not be had in time (answer 503)";
    }
    return "the session manager is stopped";
}

namespace detail {

manager_base::manager_base(std::string node_name, manager_config config)
    : config_(std::move(config))
    , node_(std::move(node_name))
    , aliases_(config_.route_alias_time)
    , timers_("troupe-mgr-" + config_.context)
    , waits_("troupe-wait-" + config_.context, 16) {
    if (!config_.filter.empty()) {
        filter_.emplace(config_.filter, std::regex::ECMAScript | std::regex::optimize);
    }
    if (!config_.skip_paths.empty()) {
        skip_paths_.emplace(config_.skip_paths, std::regex::ECMAScript | std::regex::optimize);
    }
    // Ids are str8 on the wire: 32 hex digits, '.', and at most 200 of the name.
    if (node_.size() > 200) {
        node_.resize(200);
    }
}

manager_base::~manager_base() { stop_base(); }

void manager_base::start_timers() {
    if (config_.expiry_interval.count() > 0) {
        timers_.every(config_.expiry_interval, [this] { expire_now(); });
    }
    timers_.start();
}

void manager_base::stop_base() {
    stopped_ = true;
    timers_.stop();
}

bool manager_base::skips(const request_info& request) const {
    if (skip_paths_ && std::regex_match(request.path.begin(), request.path.end(), *skip_paths_)) {
        return true;
    }
    if (request.has_header) {
        for (const auto& name : config_.skip_headers) {
            if (request.has_header(name)) {
                return true;
            }
        }
    }
    return false;
}

// A begin in three parts, so that the asynchronous one can run the part
// that may wait elsewhere:
//  open()     never blocks: counters, skip, filter, the cookie's id (copied,
//             the request's views are not read after);
//  look_up()  finds the session; waiting for it (state transfer,
//             reconciliation, a backup manager's fetch) only when allowed;
//  finish_begin() the error code (unavailable, stopped).
// begin_request() runs the three in a row; begin_request_async() tries
// look_up() without waiting first, on the caller's thread (the usual case
// ends there, with no thread hop), and else runs it on a wait thread.
std::unique_ptr<request_scope::state> manager_base::open(const request_info& request) {
    if (stopped()) {
        return nullptr;
    }
    counters_.requests.fetch_add(1, std::memory_order_relaxed);
    auto st = std::make_unique<request_scope::state>();
    st->mgr = this;
    if (skips(request)) {
        // Neither created nor looked up: a health check must not keep a
        // session alive, nor wait for a state transfer or a fetch.
        counters_.requests_skipped.fetch_add(1, std::memory_order_relaxed);
        st->skipped = true;
        st->replicates = false;
        return st;
    }
    st->replicates = !filter_ || !std::regex_match(request.path.begin(), request.path.end(), *filter_);
    if (!st->replicates) {
        counters_.requests_filtered.fetch_add(1, std::memory_order_relaxed);
    }
    st->cookie_id = std::string(request.cookie_id);
    return st;
}

bool manager_base::look_up(request_scope::state& st, bool may_wait) {
    lookup l;
    l.may_wait = may_wait;
    if (st.skipped || st.cookie_id.empty() || st.cookie_id.size() > wire::max_id) {
        return true;
    }
    std::string id = st.cookie_id;
    bool alias_hit = false; // counted once the lookup is over (a first try may give up)
    auto s = store_.find(id);
    if (!s) {
        // The id was route-rewritten a while ago (the alias table: for
        // route_alias_time after this member learned of it), and the
        // client has not had the new cookie (its answer was lost, or it
        // went on before it came). Held here: that copy.
        if (auto to = aliases_.find(id, now())) {
            // Held here, or elsewhere where it is known to live (a backup
            // manager's proxy fetches it). Not found: the rename may not
            // have stood (its request failed, and the session took the
            // old id back), and the old id is looked for, as usual.
            s = store_.find(*to);
            if (!s) {
                s = find_moved(*to, l);
                if (l.would_wait) {
                    return false;
                }
            }
            if (s) {
                alias_hit = true;
                id = s->id(); // a fetch may have followed the alias further
            }
        }
    }
    // unverified() looks the id up again: if the copy found here left the
    // store meanwhile (a newer location dropped it, or the session ended
    // elsewhere), its answer was about another copy or none, so wait_for()
    // decides. A copy that left the store never comes back to it.
    if (!s || unverified(id) || store_.find(id) != s) {
        s = wait_for(id, l);
        if (l.would_wait) {
            return false;
        }
        st.unavailable = l.unavailable;
    }
    if (alias_hit) {
        counters_.alias_hits.fetch_add(1, std::memory_order_relaxed);
    }
    if (s && session_access::begin_use(*s, now())) {
        st.s = std::move(s);
    }
    // A request for a session whose route names a member that is no longer
    // in the view (killed, cut off, left): the balancer failed it over here.
    // Its first change gives the session this member's route, so that the
    // next request sticks here. Only on a replicating request: its end sends
    // the rename with the change.
    if (st.s && st.replicates && config_.route_rewrite) {
        const auto sid = st.s->id(); // route_of() views into it
        const auto route = route_of(sid);
        st.rewrite_pending = !route.empty() && route != node_ && !route_in_view(route);
    }
    return true;
}

request_scope manager_base::finish_begin(std::unique_ptr<request_scope::state> st, boost::system::error_code& ec) {
    ec = {};
    if (!st) {
        ec = make_error_code(errc::stopped);
        return request_scope(nullptr);
    }
    if (stopped()) {
        // Stopped while the lookup waited (the wait returned for it): no
        // session, not even a new one in place of one that may exist. The
        // scope ends here, releasing the session's use.
        ec = make_error_code(errc::stopped);
        request_scope(std::move(st)).end_unwaited();
        return request_scope(nullptr);
    }
    if (st->unavailable) {
        counters_.requests_unavailable.fetch_add(1, std::memory_order_relaxed);
        ec = make_error_code(errc::session_unavailable);
    }
    return request_scope(std::move(st));
}

void manager_base::look_up_waiting(std::unique_ptr<request_scope::state> st, const std::shared_ptr<begin_slot>& slot) {
    boost::system::error_code ec;
    std::optional<request_scope> scope;
    try {
        look_up(*st, true);
        scope.emplace(finish_begin(std::move(st), ec));
    } catch (const std::exception& e) {
        // The scope (if the session's use began) ends as a dropped one.
        if (st) {
            request_scope(std::move(st)).end_unwaited();
        }
        log()->error("context {}: an asynchronous begin failed while it waited: {}", config_.context, e.what());
        ec = make_error_code(errc::session_unavailable);
        scope.emplace(request_scope(nullptr));
    }
    slot->complete(ec, std::move(*scope));
}

request_scope manager_base::begin_request(const request_info& request, boost::system::error_code& ec) {
    auto st = open(request);
    if (st) {
        look_up(*st, true);
    }
    return finish_begin(std::move(st), ec);
}

void manager_base::begin_into(const request_info& request, std::shared_ptr<begin_slot> slot) {
    auto st = open(request);
    if (st && !look_up(*st, false)) {
        // The session must be waited for: on a wait thread. The state moves
        // there (a std::function must be copyable, hence the shared_ptr).
        counters_.async_waits.fetch_add(1, std::memory_order_relaxed);
        auto state = std::make_shared<std::unique_ptr<request_scope::state>>(std::move(st));
        const auto queued = waits_.submit([this, state, slot] { look_up_waiting(std::move(*state), slot); });
        if (queued != wait_pool::submitted::queued) {
            // Stopped meanwhile, or too many begins waiting already (a
            // flood of ids no member holds): this one fails at once.
            state->reset();
            slot->complete(make_error_code(queued == wait_pool::submitted::stopped ? errc::stopped
                                                                                   : errc::session_unavailable),
                           request_scope(nullptr));
        }
        return;
    }
    boost::system::error_code ec;
    auto scope = finish_begin(std::move(st), ec);
    slot->complete(ec, std::move(scope));
}

std::string manager_base::new_id() const {
    std::array<unsigned char, 16> bytes{};
    if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
        // Never expected; a predictable id would be a security hole, so refuse.
        throw std::runtime_error("troupe: no cryptographic randomness for a session id (RAND_bytes failed)");
    }
    static constexpr char hex[] = "0123456789abcdef";
    std::string id;
    id.reserve(33 + node_.size());
    for (auto b : bytes) {
        id.push_back(hex[b >> 4]);
        id.push_back(hex[b & 0xf]);
    }
    id.push_back('.');
    id += node_;
    return id;
}

std::shared_ptr<session> manager_base::create_session() {
    const auto t = now();
    std::shared_ptr<session> s;
    // 128 random bits do not collide; the loop only makes sure of it.
    for (int attempt = 0; attempt < 4; ++attempt) {
        s = std::make_shared<session>(new_id(), t, config_.max_inactive);
        session_access::begin_use(*s, t);
        if (store_.insert(s)) {
            break;
        }
        s.reset();
    }
    if (!s) {
        throw std::runtime_error("troupe: could not find a free session id");
    }
    counters_.created.fetch_add(1, std::memory_order_relaxed);
    fire({session_event::kind::created, s->id(), {}, false, false});
    return s;
}

bool manager_base::rotate(const std::shared_ptr<session>& s) {
    if (!s->valid()) {
        return false;
    }
    const auto old_id = s->id();
    if (!store_.rename(s, old_id, new_id())) {
        return false;
    }
    counters_.rotated.fetch_add(1, std::memory_order_relaxed);
    id_gone(old_id);
    renamed_here(old_id, s->id(), s->version());
    return true;
}

// Route rewrite through membership changes (tests: route_rewrite_test.cpp,
// the HAProxy integration test, consistency-check --via haproxy):
//  1. The route's member was killed or left: it is out of the view, and the
//     member serving the next request takes the route; the rename goes out
//     with the request's change (id_changed), the old id is an alias here and
//     on every copy holder for route_alias_time.
//  2. The route's member is frozen or cut off but still in the view (the
//     balancer gave up on it first): a detour, the id keeps its route.
//  3. It was removed but lives on (a long freeze, a cut): the rename ends the
//     old id only up to the rename's version (a route tombstone); its stale
//     copy is refused or reconciled as any stale copy when it comes back.
//  4. The id comes back (x.a -> x.b -> x.a, when b fails later): a message past
//     a route tombstone's version lifts it, digests and LOCATIONS carry the
//     flag, and the member that renames drops its own tombstone of the id.
//  5. A member that missed the rename learns the alias with it, for
//     route_alias_time from then, so that a client that never got its new
//     cookie (its answer was lost) still finds its session: delta, cut off or
//     frozen: the digests after the heal carry the route tombstone's new id;
//     backup, a proxy: the old id's LOCATIONS entry carries it (once the
//     rename stands at the backup), and the proxy fetches the new id from
//     where it lives (find_moved: never every member's copies). A member that
//     learned nothing (a joiner: locations, no digests) asks every member for
//     the old id, and a member that holds the new id and knows the alias
//     answers for it (answer_fetch). An alias older than what a member knows
//     of the old id (it came back, x.a -> x.b -> x.a) is dropped or ignored
//     (lift_route_locked, known_past_locked).
//  6. Concurrent requests on one member: one renames (the store's rename is
//     atomic), the others find the session renamed or through the alias.
//  7. Concurrent requests on two members that both lost the route's member:
//     two renames, two ids (both sessions hold the state up to then; the
//     client keeps the last cookie). The shipped HAProxy configuration hashes
//     the cookie so that one user's requests reach one survivor.
//  8. The request that renamed fails (a refused or unanswered replication):
//     its client keeps the old id, so the session gets it back here
//     (rename_failed), and the next rename goes out again.
bool manager_base::rewrite_route(const std::shared_ptr<session>& s) {
    if (!s->valid()) {
        return false;
    }
    const auto old_id = s->id();
    auto new_id = with_route(old_id, node_);
    if (!new_id || *new_id == old_id) {
        return false;
    }
    // The alias first: a request that misses the old id from now on finds it.
    const bool aliased = aliases_.add(old_id, *new_id, now());
    if (!store_.rename(s, old_id, *new_id)) {
        // Renamed meanwhile (a concurrent request rewrote it first: its alias
        // is this one, and stays), or the new id is taken: the session keeps
        // the id it has.
        if (aliased && s->id() != *new_id) {
            aliases_.erase(old_id);
        }
        return false;
    }
    counters_.route_rewrites.fetch_add(1, std::memory_order_relaxed);
    // Its rename is the next step: whatever comes about the old id up to
    // that step is stale, and the id may come back later (route_renamed()).
    route_renamed(old_id, *new_id, s->version() + 1);
    return true;
}

void manager_base::rename_failed(const std::shared_ptr<session>& s, const std::string& old_id) {
    counters_.route_rewrites_failed.fetch_add(1, std::memory_order_relaxed);
    // The client keeps the old id and goes on with it wherever it lands, and
    // a member asked for it must find the session: give it the old id back
    // (the next step replicates that rename too). A concurrent request that
    // already answered with the new id finds it through the alias.
    // Not a rename of its own (local = false): the members that took the
    // failed step hold the new id, the others the old one; the next rename
    // (old -> new, sent again) brings both to one id.
    const auto new_id = s->id();
    aliases_.erase_if_to(old_id, new_id);
    if (!s->valid() || new_id == old_id || !store_.rename(s, new_id, old_id, false)) {
        return; // renamed again, replaced or ended meanwhile
    }
    aliases_.add(new_id, old_id, now());
    route_renamed(new_id, old_id, s->version() + 1);
}

void manager_base::renamed_elsewhere(const std::string& from, const std::string& to) {
    if (same_but_route(from, to)) {
        aliases_.add(from, to, now());
    }
}

void manager_base::destroyed(const std::shared_ptr<session>& s, const std::string& id, bool expired,
                             bool replicated) {
    store_.erase_if_same(id, s.get());
    id_gone(id);
    (expired ? counters_.expired : counters_.invalidated).fetch_add(1, std::memory_order_relaxed);
    if (!replicated || fire_on_replication()) {
        fire({session_event::kind::destroyed, id, {}, replicated, expired});
    }
}

end_result manager_base::finish(const std::shared_ptr<session>& s, bool replicates) {
    return replicate(s, replicates, true);
}

void manager_base::finish_async(const std::shared_ptr<session>& s, bool replicates, result_handler done) {
    replicate_async(s, replicates, true, std::move(done));
}

void manager_base::replicate_async(const std::shared_ptr<session>& s, bool replicates, bool ends_use,
                                   result_handler done) {
    deliver(done, replicate(s, replicates, ends_use));
}

end_result manager_base::replicate(const std::shared_ptr<session>& s, bool replicates, bool ends_use) {
    (void)replicates;
    session_access::commit_local(*s, ends_use);
    return {};
}

void manager_base::add_listener(session_listener listener) {
    std::unique_lock lock(listeners_mutex_);
    listeners_.push_back(std::make_shared<const session_listener>(std::move(listener)));
}

void manager_base::fire(const session_event& e) {
    std::vector<std::shared_ptr<const session_listener>> copy;
    {
        std::shared_lock lock(listeners_mutex_);
        if (listeners_.empty()) {
            return;
        }
        copy = listeners_;
    }
    for (const auto& l : copy) {
        try {
            (*l)(e);
        } catch (const std::exception& ex) {
            counters_.listener_failures.fetch_add(1, std::memory_order_relaxed);
            if (auto n = listener_log_.allow()) {
                log()->warn("session listener threw: {} ({} such since the last line)", ex.what(), *n);
            }
        } catch (...) {
            counters_.listener_failures.fetch_add(1, std::memory_order_relaxed);
        }
    }
}

std::shared_ptr<session> manager_base::find(std::string_view id) const { return store_.find(id); }

std::size_t manager_base::size() const { return store_.size(); }

std::vector<std::string> manager_base::session_ids() const {
    std::vector<std::string> ids;
    store_.for_each_locked([&ids](const std::shared_ptr<session>& s) { ids.emplace_back(session_access::key(*s)); });
    return ids;
}

std::string manager_base::copies_json(std::size_t limit) const {
    auto copies = nlohmann::json::array();
    bool truncated = false;
    store_.for_each_locked([&](const std::shared_ptr<session>& s) {
        const auto stamp = session_access::valid_stamp(*s);
        if (!stamp) {
            return;
        }
        if (copies.size() >= limit) {
            truncated = true;
            return;
        }
        copies.push_back({{"id", std::string(session_access::key(*s))},
                          {"role", std::string(role_name(*s))},
                          {"version", stamp->version},
                          {"acked", stamp->acked}});
    });
    return nlohmann::json{{"copies", std::move(copies)}, {"truncated", truncated}}.dump();
}

std::size_t manager_base::expire_now() {
    const auto t = now();
    const auto grace = expiry_grace();
    std::vector<std::shared_ptr<session>> gone;
    store_.for_each_locked([&](const std::shared_ptr<session>& s) {
        if (session_access::expire_if_idle(*s, t, grace)) {
            gone.push_back(s);
        }
    });
    for (const auto& s : gone) {
        const auto id = s->id();
        destroyed(s, id, true, false);
        expired_here(s);
    }
    if (!gone.empty()) {
        SPDLOG_LOGGER_DEBUG(log(), "context {}: {} sessions expired", config_.context, gone.size());
    }
    return gone.size();
}

bool manager_base::await_state_transfer(std::chrono::milliseconds) { return true; }

void manager_base::stop() {
    // Replicating managers have woken their own waits by now (their stop()
    // ends here), fetches are woken here: the asynchronous begins queued or
    // waiting finish at once (with errc::stopped).
    wake_waits();
    waits_.stop();
    if (stopped_.exchange(true)) {
        return;
    }
    if (config_.expire_sessions_on_shutdown) {
        std::vector<std::shared_ptr<session>> all;
        store_.for_each_locked([&](const std::shared_ptr<session>& s) {
            if (session_access::expire(*s)) {
                all.push_back(s);
            }
        });
        for (const auto& s : all) {
            destroyed(s, s->id(), true, false);
        }
    }
    stop_base();
}

void manager_base::add_stats(nlohmann::json&) const {}

std::string manager_base::stats_json() const {
    nlohmann::json j;
    j["type"] = std::string(type_name());
    j["context"] = config_.context;
    j["node"] = node_;
    j["sessions"] = store_.size();
    const auto& c = counters_;
    j["requests"] = c.requests.load();
    j["requests_filtered"] = c.requests_filtered.load();
    j["requests_skipped"] = c.requests_skipped.load();
    j["requests_unavailable"] = c.requests_unavailable.load();
    j["async_waits"] = c.async_waits.load();
    j["route_rewrites"] = c.route_rewrites.load();
    j["route_rewrites_failed"] = c.route_rewrites_failed.load();
    j["route_aliases"] = aliases_.size();
    j["route_alias_hits"] = c.alias_hits.load();
    j["route_aliases_refused"] = aliases_.refused();
    j["created"] = c.created.load();
    j["expired"] = c.expired.load();
    j["invalidated"] = c.invalidated.load();
    j["rotated"] = c.rotated.load();
    j["listener_failures"] = c.listener_failures.load();
    j["replication_failures"] = c.replication_failures.load();
    j["on_replication_failure"] =
        config_.on_replication_failure == manager_config::on_failure::fail ? "fail" : "log";
    add_stats(j);
    return j.dump();
}

std::string manager_base::metrics_text() const {
    std::string out;
    const std::string label = "{context=\"" + config_.context + "\"}";
    auto gauge = [&](const char* name, std::uint64_t v) {
        out += std::string("# TYPE ") + name + " gauge\n" + name + label + " " + std::to_string(v) + "\n";
    };
    auto counter = [&](const char* name, std::uint64_t v) {
        out += std::string("# TYPE ") + name + " counter\n" + name + label + " " + std::to_string(v) + "\n";
    };
    const auto& c = counters_;
    gauge("troupe_sessions", store_.size());
    counter("troupe_session_requests_total", c.requests.load());
    counter("troupe_session_requests_filtered_total", c.requests_filtered.load());
    counter("troupe_session_requests_skipped_total", c.requests_skipped.load());
    counter("troupe_session_requests_unavailable_total", c.requests_unavailable.load());
    counter("troupe_session_async_waits_total", c.async_waits.load());
    counter("troupe_session_route_rewrites_total", c.route_rewrites.load());
    counter("troupe_session_route_rewrites_failed_total", c.route_rewrites_failed.load());
    gauge("troupe_session_route_aliases", aliases_.size());
    counter("troupe_session_route_alias_hits_total", c.alias_hits.load());
    counter("troupe_session_route_aliases_refused_total", aliases_.refused());
    counter("troupe_sessions_created_total", c.created.load());
    counter("troupe_sessions_expired_total", c.expired.load());
    counter("troupe_sessions_invalidated_total", c.invalidated.load());
    counter("troupe_session_ids_rotated_total", c.rotated.load());
    counter("troupe_session_listener_failures_total", c.listener_failures.load());
    counter("troupe_session_replication_failures_total", c.replication_failures.load());
    add_metrics(out);
    return out;
}

} // namespace detail
} // namespace troupe::managers

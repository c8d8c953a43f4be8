// SPDX-License-Identifier: Apache-2.0
#include <troupe/membership/dns_discovery.hpp>

#include "log.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <algorithm>
#include <atomic>
#include <future>
#include <mutex>

namespace troupe::membership {

namespace asio = boost::asio;
using boost::asio::ip::tcp;
using boost::system::error_code;

namespace {

// One name's records, as a platform lists its pods or containers: far fewer
// in practice; an answer past this is cut (and counted), so a bad record set
// cannot make the channel dial without bound.
constexpr std::size_t max_addresses = 256;

} // namespace

struct dns_discovery::impl : std::enable_shared_from_this<impl> {
    impl(asio::io_context& io, conf::dns_section s)
        : strand(asio::make_strand(io))
        , resolver(strand)
        , timer(strand)
        , settings(std::move(s)) {}

    asio::strand<asio::io_context::executor_type> strand;
    tcp::resolver resolver;
    asio::steady_timer timer;
    conf::dns_section settings;
    found_handler found;
    bool stopped = false; ///< strand-only
    std::atomic<bool> stop_requested{false};

    std::atomic<std::uint64_t> lookups{0};
    std::atomic<std::uint64_t> failures{0};
    std::atomic<std::uint64_t> truncated{0};
    std::atomic<std::uint64_t> addresses{0};
    std::string last_error; ///< strand-only: logged once per change, not per interval

    void resolve() {
        if (stopped) {
            return;
        }
        lookups.fetch_add(1, std::memory_order_relaxed);
        // The port is the channel's business: only the addresses are used.
        resolver.async_resolve(settings.name, "", tcp::resolver::numeric_service,
                               [self = shared_from_this()](const error_code& ec, tcp::resolver::results_type r) {
                                   self->resolved(ec, r);
                               });
    }

    void resolved(const error_code& ec, const tcp::resolver::results_type& results) {
        if (stopped) {
            return;
        }
        std::vector<std::string> list;
        for (const auto& e : results) {
            list.push_back(e.endpoint().address().to_string());
        }
        std::sort(list.begin(), list.end());
        list.erase(std::unique(list.begin(), list.end()), list.end());
        if (ec || list.empty()) {
            failures.fetch_add(1, std::memory_order_relaxed);
            const auto why = ec ? ec.message() : std::string("no records");
            if (why != last_error) {
                log()->warn("membership.dns: looking up {} failed: {}; the last answer ({} address(es)) stands",
                            settings.name, why, addresses.load());
                last_error = why;
            }
        } else {
            if (!last_error.empty()) {
                log()->info("membership.dns: {} resolves again ({} address(es))", settings.name, list.size());
                last_error.clear();
            }
            if (list.size() > max_addresses) {
                truncated.fetch_add(1, std::memory_order_relaxed);
                list.resize(max_addresses);
            }
            addresses.store(list.size(), std::memory_order_relaxed);
            found(list);
        }
        timer.expires_after(settings.interval);
        timer.async_wait([self = shared_from_this()](const error_code& e) {
            if (!e) {
                self->resolve();
            }
        });
    }
};

dns_discovery::dns_discovery(asio::io_context& io, conf::dns_section settings)
    : impl_(std::make_shared<impl>(io, std::move(settings))) {}

dns_discovery::~dns_discovery() { stop(); }

void dns_discovery::start(found_handler found) {
    impl_->found = std::move(found);
    asio::post(impl_->strand, [self = impl_] { self->resolve(); });
}

void dns_discovery::stop() {
    if (impl_->stop_requested.exchange(true)) {
        return;
    }
    auto done = std::make_shared<std::promise<void>>();
    auto finished = done->get_future();
    asio::post(impl_->strand, [self = impl_, done] {
        self->stopped = true;
        self->timer.cancel();
        self->resolver.cancel();
        done->set_value();
    });
    // Bounded: if the io_context no longer runs, nothing calls `found` anyway.
    finished.wait_for(std::chrono::seconds(1));
}

std::vector<std::pair<std::string, std::uint64_t>> dns_discovery::counters() const {
    return {{"dns_lookups", impl_->lookups.load()},
            {"dns_failures", impl_->failures.load()},
            {"dns_truncated", impl_->truncated.load()},
            {"dns_addresses", impl_->addresses.load()}};
}

} // namespace troupe::membership

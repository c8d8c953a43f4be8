// SPDX-License-Identifier: Apache-2.0
// DNS discovery through the system's resolver: "localhost" comes from
// /etc/hosts, a name under .invalid never resolves (RFC 6761). The lab test
// (tests/lab) runs it against a real DNS server whose records change.
#include <troupe/membership/dns_discovery.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

namespace {

using namespace std::chrono_literals;

struct running_io {
    boost::asio::io_context io;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{io.get_executor()};
    std::thread thread{[this] { io.run(); }};
    ~running_io() {
        work.reset();
        io.stop();
        thread.join();
    }
};

std::map<std::string, std::uint64_t> counters(const troupe::membership::dns_discovery& d) {
    std::map<std::string, std::uint64_t> out;
    for (const auto& [name, n] : d.counters()) {
        out[name] = n;
    }
    return out;
}

} // namespace

TEST_CASE("dns discovery: a name's addresses are handed up on every interval, sorted and unique",
          "[membership][dns]") {
    running_io r;
    troupe::conf::dns_section s;
    s.name = "localhost";
    s.interval = 100ms;
    troupe::membership::dns_discovery d(r.io, s);
    std::mutex m;
    std::condition_variable cv;
    std::vector<std::vector<std::string>> answers;
    d.start([&](const std::vector<std::string>& a) {
        std::lock_guard lock(m);
        answers.push_back(a);
        cv.notify_all();
    });
    {
        std::unique_lock lock(m);
        REQUIRE(cv.wait_for(lock, 10s, [&] { return answers.size() >= 2; })); // again after the interval
        for (const auto& a : answers) {
            CHECK(std::find(a.begin(), a.end(), "127.0.0.1") != a.end());
            CHECK(std::is_sorted(a.begin(), a.end()));
            CHECK(std::adjacent_find(a.begin(), a.end()) == a.end());
        }
    }
    d.stop();
    std::size_t after_stop = 0;
    {
        std::lock_guard lock(m);
        after_stop = answers.size();
    }
    std::this_thread::sleep_for(300ms); // would be three more intervals
    std::lock_guard lock(m);
    CHECK(answers.size() == after_stop); // nothing after stop()
    CHECK(counters(d).at("dns_lookups") >= 2);
    CHECK(counters(d).at("dns_failures") == 0);
    CHECK(counters(d).at("dns_addresses") >= 1);
}

TEST_CASE("dns discovery: a name that does not resolve is counted and hands nothing up", "[membership][dns]") {
    running_io r;
    troupe::conf::dns_section s;
    s.name = "no-such-member.invalid";
    s.interval = 100ms;
    troupe::membership::dns_discovery d(r.io, s);
    std::atomic<int> answers{0};
    d.start([&](const std::vector<std::string>&) { ++answers; });
    const auto deadline = std::chrono::steady_clock::now() + 60s; // a slow resolver times out instead
    while (counters(d).at("dns_failures") < 2 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(20ms);
    }
    d.stop();
    CHECK(counters(d).at("dns_failures") >= 2);
    CHECK(answers == 0); // the last answer (none) stands
}

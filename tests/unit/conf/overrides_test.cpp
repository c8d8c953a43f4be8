// SPDX-License-Identifier: Apache-2.0
#include <troupe/conf/load.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using strings = std::vector<std::string>;

// Overrides form a pseudo-file named "--set": line N is the N-th override and the
// column counts from the first character of its `key=value` string.

namespace {

strings errors(const std::string& yaml, const strings& overrides) {
    try {
        (void)troupe::conf::load_string(yaml, "cluster.yaml", overrides);
    } catch (const troupe::conf::config_error& e) {
        strings printed;
        for (const auto& d : e.diagnostics()) {
            printed.push_back(d.str());
        }
        return printed;
    }
    return {};
}

const std::string base = "receiver:\n  port: 4000\nmembership:\n  static: [a:1, b:2, c:3]\n";

} // namespace

TEST_CASE("an override replaces the file's value", "[conf]") {
    const auto c = troupe::conf::load_string(base, "cluster.yaml", {"receiver.port=0"});
    CHECK(c.receiver.port == 0);
}

TEST_CASE("an override value is YAML, so a flow list sets membership.static", "[conf]") {
    const auto c = troupe::conf::load_string(
        base, "cluster.yaml", {"membership.static=[127.0.0.1:4001, 127.0.0.1:4002]"});
    CHECK(c.membership.static_members ==
          std::vector<troupe::conf::host_port>{{"127.0.0.1", 4001}, {"127.0.0.1", 4002}});
}

TEST_CASE("an override can set several keys of a section with a flow map", "[conf]") {
    const auto c = troupe::conf::load_string("sender:\n  block_timeout: 2s\n", "cluster.yaml",
                                             {"sender={ack_timeout: 5s, queue_limit: 1GiB}"});
    CHECK(c.sender.ack_timeout == 5s);
    CHECK(c.sender.queue_limit == 1ULL << 30);
    CHECK(c.sender.block_timeout == 2s);
}

TEST_CASE("later overrides win over earlier ones", "[conf]") {
    const auto c = troupe::conf::load_string("", "cluster.yaml",
                                             {"cluster.name=first", "cluster.name=second"});
    CHECK(c.cluster.name == "second");
}

TEST_CASE("an override may clear a string, but an empty value elsewhere is an error", "[conf]") {
    const auto c = troupe::conf::load_string("cluster:\n  secret: 0123456789abcdef\n",
                                             "cluster.yaml", {"cluster.secret="});
    CHECK(c.cluster.secret.empty());
    CHECK(errors("", {"receiver.port="}) ==
          strings{"--set:1:1: error: receiver.port: expected an integer from 0 to 65535 (got "
                  "nothing)"});
}

TEST_CASE("an override of a whole section needs a map", "[conf]") {
    CHECK(errors("", {"sender="}) ==
          strings{"--set:1:1: error: sender: expected a map (got nothing)"});
    CHECK(errors("", {"sender=5s"}) ==
          strings{"--set:1:8: error: sender: expected a map (got '5s')"});
}

TEST_CASE("an override without = is an error", "[conf]") {
    CHECK(errors("", {"receiver.port"}) ==
          strings{"--set:1:1: error: expected key=value (got 'receiver.port')"});
    CHECK(errors("", {"=4000"}) == strings{"--set:1:1: error: expected key=value (got '=4000')"});
    CHECK(errors("", {""}) == strings{"--set:1:1: error: expected key=value (got '')"});
}

TEST_CASE("an override with an unknown key points at the wrong part", "[conf]") {
    CHECK(errors("", {"recever.port=1"}) ==
          strings{"--set:1:1: error: recever: unknown key 'recever' (did you mean 'receiver'?)"});
    CHECK(errors("", {"sender.ack_timout=1s"}) ==
          strings{"--set:1:8: error: sender.ack_timout: unknown key 'ack_timout' (did you mean "
                  "'ack_timeout'?)"});
    CHECK(errors("", {"receiver.port.number=1"}) ==
          strings{"--set:1:15: error: receiver.port.number: unknown key 'number' (receiver.port "
                  "has no keys)"});
    CHECK(errors("", {"sender={ack_timeout: 5s, ack_timout: 1s}"}) ==
          strings{"--set:1:26: error: sender.ack_timout: unknown key 'ack_timout' (did you mean "
                  "'ack_timeout'?)"});
}

TEST_CASE("an override's line is its rank among the overrides", "[conf]") {
    CHECK(errors("", {"receiver.port=1", "receiver.port=x", "admin.port=y"}) ==
          strings{"--set:2:15: error: receiver.port: expected an integer from 0 to 65535 (got "
                  "'x')",
                  "--set:3:12: error: admin.port: expected an integer from 0 to 65535 (got 'y')"});
}

TEST_CASE("an override's value errors point into the value", "[conf]") {
    CHECK(errors("", {"membership.static=[127.0.0.1:4001, localhost]"}) ==
          strings{"--set:1:36: error: membership.static[1]: expected host:port (got "
                  "'localhost')"});
    CHECK(errors("", {"membership.static=[127.0.0.1:4001"}) ==
          strings{"--set:1:19: error: membership.static: end of sequence flow not found"});
}

TEST_CASE("an override value that YAML reads as a comment must be quoted", "[conf]") {
    CHECK(errors("", {"cluster.secret=#0123456789abcdef"}) ==
          strings{"--set:1:16: error: cluster.secret: reads as an empty YAML value, quote it "
                  "(got '#0123456789abcdef')"});
    const auto c =
        troupe::conf::load_string("", "cluster.yaml", {"cluster.secret='#0123456789abcdef'"});
    CHECK(c.cluster.secret == "#0123456789abcdef");
}

TEST_CASE("a rule broken by an override is reported at the override", "[conf]") {
    CHECK(errors(base, {"receiver.threads=0"}) ==
          strings{"--set:1:1: error: receiver.threads: must be from 1 to 64 (got 0)"});
    CHECK(errors("receiver:\n  threads: 2\n", {"receiver.threads=100"}) ==
          strings{"--set:1:1: error: receiver.threads: must be from 1 to 64 (got 100)"});
    CHECK(errors(base, {"receiver.reader_threads=1025"}) ==
          strings{"--set:1:1: error: receiver.reader_threads: must be from 0 to 1024 (got 1025)"});
    CHECK(errors(base, {"membership.static=[x:1, x:1]"}) ==
          strings{"--set:1:25: error: membership.static[1]: x:1 is listed twice (first as "
                  "membership.static[0])"});
}

TEST_CASE("file and override diagnostics are all reported, the file's first", "[conf]") {
    CHECK(errors("receiver:\n  port: x\n", {"sender.block_timeout=0ms", "nonsense"}) ==
          strings{"cluster.yaml:2:9: error: receiver.port: expected an integer from 0 to 65535 "
                  "(got 'x')",
                  "--set:1:1: error: sender.block_timeout: must be greater than 0 (got 0ms)",
                  "--set:2:1: error: expected key=value (got 'nonsense')"});
}

TEST_CASE("an override does not hide a mistake in the file", "[conf]") {
    CHECK(errors("receiver:\n  port: x\n", {"receiver.port=4000"}) ==
          strings{"cluster.yaml:2:9: error: receiver.port: expected an integer from 0 to 65535 "
                  "(got 'x')"});
}

TEST_CASE("overrides are checked even when the file has a syntax error", "[conf]") {
    CHECK(errors("receiver: [\n", {"sender.ack_timout=1s"}) ==
          strings{"cluster.yaml:2:1: error: end of sequence flow not found",
                  "--set:1:8: error: sender.ack_timout: unknown key 'ack_timout' (did you mean "
                  "'ack_timeout'?)"});
}

TEST_CASE("an override reaches a key of an inner map", "[conf]") {
    const auto c = troupe::conf::load_string(
        "membership:\n  multicast:\n    ttl: 4\n", "cluster.yaml",
        {"membership.multicast.enabled=false", "membership.failure_detector.ping_interval=250ms"});
    CHECK_FALSE(c.membership.multicast.enabled);
    CHECK(c.membership.multicast.ttl == 4);
    CHECK(c.membership.failure_detector.ping_interval == 250ms);
}

TEST_CASE("an override can set several keys of an inner map, or the inner map from above",
          "[conf]") {
    const auto c =
        troupe::conf::load_string("membership:\n  multicast:\n    ttl: 4\n", "cluster.yaml",
                                  {"membership.multicast={address: 239.1.1.1, port: 45600}",
                                   "membership={failure_detector: {verify_timeout: 2s}}"});
    CHECK(c.membership.multicast.address == "239.1.1.1");
    CHECK(c.membership.multicast.port == 45600);
    CHECK(c.membership.multicast.ttl == 4);
    CHECK(c.membership.failure_detector.verify_timeout == 2s);
    CHECK(errors("", {"membership.multicast="}) ==
          strings{"--set:1:1: error: membership.multicast: expected a map (got nothing)"});
    CHECK(errors("", {"membership.multicast=off"}) ==
          strings{"--set:1:22: error: membership.multicast: expected a map (got 'off')"});
}

TEST_CASE("an override replaces membership.payload as a whole", "[conf]") {
    using pairs = std::vector<std::pair<std::string, std::string>>;
    const std::string file = "membership:\n  payload:\n    zone: b\n    rack: r1\n";
    CHECK(troupe::conf::load_string(file, "cluster.yaml", {"membership.payload={zone: a}"})
              .membership.payload == pairs{{"zone", "a"}});
    CHECK(troupe::conf::load_string(file, "cluster.yaml", {"membership.payload={}"})
              .membership.payload.empty());
    CHECK(troupe::conf::load_string(file, "cluster.yaml", {"membership.payload="})
              .membership.payload.empty());
    CHECK(errors("", {"membership.payload.zone=a"}) ==
          strings{"--set:1:20: error: membership.payload.zone: unknown key 'zone' "
                  "(membership.payload is set as a whole map, like membership.payload={zone: a})"});
}

TEST_CASE("a payload rule broken by an override points into the override", "[conf]") {
    CHECK(errors("", {"membership.payload={zone: a, my zone: b}"}) ==
          strings{"--set:1:30: error: membership.payload: key must be 1 to 32 bytes of letters, "
                  "digits, '.', '_' and '-' (got 'my zone')"});
    CHECK(errors("", {"membership.payload={zone: [a]}"}) ==
          strings{"--set:1:27: error: membership.payload.zone: expected a string (got a list)"});
    // The file's entries are gone with the map they were in: nothing of them is judged.
    CHECK(errors("membership:\n  payload:\n    'bad key': v\n", {"membership.payload={ok: v}"})
              .empty());
}

TEST_CASE("an override with an unknown or removed key in membership says so", "[conf]") {
    CHECK(errors("", {"membership.multicast.frequncy=1s"}) ==
          strings{"--set:1:22: error: membership.multicast.frequncy: unknown key 'frequncy' (did "
                  "you mean 'frequency'?)"});
    CHECK(errors("", {"membership.multicst.ttl=1"}) ==
          strings{"--set:1:12: error: membership.multicst: unknown key 'multicst' (did you mean "
                  "'multicast'?)"});
    CHECK(errors("", {"membership.drop_time=5s"}) ==
          strings{"--set:1:12: error: membership.drop_time: unknown key 'drop_time' (moved to "
                  "membership.multicast.drop_time)"});
    CHECK(errors("", {"sender.keepalive=1s"}) ==
          strings{"--set:1:8: error: sender.keepalive: unknown key 'keepalive' (moved to "
                  "membership.failure_detector.ping_interval)"});
    CHECK(errors("", {"membership={drop_time: 5s}"}) ==
          strings{"--set:1:13: error: membership.drop_time: unknown key 'drop_time' (moved to "
                  "membership.multicast.drop_time)"});
    CHECK(errors("", {"membership.multicast.ttl.max=1"}) ==
          strings{"--set:1:26: error: membership.multicast.ttl.max: unknown key 'max' "
                  "(membership.multicast.ttl has no keys)"});
}

TEST_CASE("a membership rule broken by an override is reported at the override", "[conf]") {
    CHECK(errors("", {"membership.multicast.address=10.0.0.1"}) ==
          strings{"--set:1:1: error: membership.multicast.address: must be an IPv4 multicast "
                  "address, 224.0.0.0 to 239.255.255.255 (got '10.0.0.1')"});
    CHECK(errors("membership:\n  multicast:\n    drop_time: 2s\n",
                 {"membership.multicast.frequency=2s"}) ==
          strings{"cluster.yaml:3:5: error: membership.multicast.drop_time: must exceed "
                  "membership.multicast.frequency (got 2s <= 2s)"});
}

TEST_CASE("an override sets http and manager keys, one or a whole section", "[conf]") {
    const auto c = troupe::conf::load_string(
        "manager:\n  cookie: SID\n", "cluster.yaml",
        {"http.port=0", "manager={type: standard, send_options: sync}",
         "manager.filter=^/assets/.*"});
    CHECK(c.http.port == 0);
    CHECK(c.manager.type == "standard");
    CHECK(c.manager.send_options == 6);
    CHECK(c.manager.filter == "^/assets/.*");
    CHECK(c.manager.cookie == "SID");
}

TEST_CASE("a manager rule broken by an override is reported at the override", "[conf]") {
    CHECK(errors(base, {"manager.type=buddy", "manager.filter=(x"}) ==
          strings{"--set:1:1: error: manager.type: expected one of backup, delta, standard (got "
                  "'buddy')",
                  "--set:2:1: error: manager.filter: not a valid regular expression: unmatched "
                  "'(' or ')' at character 1 (got '(x')"});
    CHECK(errors(base, {"manager.cookie_secure=maybe"}) ==
          strings{"--set:1:23: error: manager.cookie_secure: expected true or false (got "
                  "'maybe')"});
}

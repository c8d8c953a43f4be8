// SPDX-License-Identifier: Apache-2.0
#include <troupe/conf/load.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using strings = std::vector<std::string>;

namespace {

// Every diagnostic of a load, printed; empty when the file is accepted.
strings errors(const std::string& yaml, const strings& overrides = {}) {
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

strings problems(const troupe::conf::cluster_config& config) {
    strings printed;
    for (const auto& d : troupe::conf::validate(config)) {
        printed.push_back(d.str());
    }
    return printed;
}

} // namespace

TEST_CASE("validate accepts the defaults", "[conf]") {
    troupe::conf::cluster_config config;
    CHECK(problems(config).empty());
    config.cluster.node = "web-1_a";
    CHECK(problems(config).empty());
}

TEST_CASE("validate reports a config built in code without positions", "[conf]") {
    troupe::conf::cluster_config config;
    config.sender.ack_timeout = 0ms;
    const auto found = troupe::conf::validate(config);
    REQUIRE(found.size() == 1);
    CHECK(found[0].file.empty());
    CHECK(found[0].line == 0);
    CHECK(found[0].column == 0);
    CHECK(found[0].path == "sender.ack_timeout");
    CHECK(found[0].message == "must be greater than 0 (got 0ms)");
    CHECK(found[0].str() == "error: sender.ack_timeout: must be greater than 0 (got 0ms)");
}

TEST_CASE("cluster.name must not be empty", "[conf]") {
    CHECK(errors("cluster:\n  name: ''\n") ==
          strings{"cluster.yaml:2:3: error: cluster.name: must not be empty"});
}

TEST_CASE("cluster.name is at most 64 bytes", "[conf]") {
    const std::string ok(64, 'a');
    const std::string long_name(65, 'a');
    CHECK(errors("cluster:\n  name: " + ok + "\n").empty());
    CHECK(errors("cluster:\n  name: " + long_name + "\n") ==
          strings{"cluster.yaml:2:3: error: cluster.name: must be at most 64 bytes (got 65)"});
}

TEST_CASE("cluster.name allows letters, digits, dots, underscores and dashes only", "[conf]") {
    CHECK(errors("cluster:\n  name: shop.eu-1_b\n").empty());
    CHECK(errors("cluster:\n  name: my cluster\n") ==
          strings{"cluster.yaml:2:3: error: cluster.name: may contain only letters, digits, "
                  "'.', '_' and '-' (got 'my cluster')"});
}

TEST_CASE("cluster.node has no dot, because it ends session ids", "[conf]") {
    CHECK(errors("cluster:\n  node: web.1\n") ==
          strings{"cluster.yaml:2:3: error: cluster.node: may contain only letters, digits, "
                  "'_' and '-', no '.' since it ends session ids (got 'web.1')"});
    CHECK(errors("cluster:\n  node: " + std::string(65, 'n') + "\n") ==
          strings{"cluster.yaml:2:3: error: cluster.node: must be at most 64 bytes (got 65)"});
}

TEST_CASE("cluster.secret, when set, is at least 16 bytes and is never echoed", "[conf]") {
    CHECK(errors("cluster:\n  secret: hunter2\n") ==
          strings{"cluster.yaml:2:3: error: cluster.secret: must be at least 16 bytes when set "
                  "(got 7)"});
    CHECK(errors("cluster:\n  secret: 0123456789abcdef\n").empty());
    CHECK(errors("cluster:\n  secret: ''\n").empty());
}

TEST_CASE("receiver.threads is from 1 to 64", "[conf]") {
    CHECK(errors("receiver:\n  threads: 0\n") ==
          strings{"cluster.yaml:2:3: error: receiver.threads: must be from 1 to 64 (got 0)"});
    CHECK(errors("receiver:\n  threads: 65\n") ==
          strings{"cluster.yaml:2:3: error: receiver.threads: must be from 1 to 64 (got 65)"});
    CHECK(errors("receiver:\n  threads: 64\n").empty());
}

TEST_CASE("receiver.auto_bind is at least 1", "[conf]") {
    CHECK(errors("receiver:\n  auto_bind: 0\n") ==
          strings{"cluster.yaml:2:3: error: receiver.auto_bind: must be at least 1 (got 0)"});
}

TEST_CASE("receiver.auto_bind keeps the last port tried within 65535", "[conf]") {
    CHECK(errors("receiver:\n  port: 65500\n  auto_bind: 36\n").empty());
    CHECK(errors("receiver:\n  port: 65500\n  auto_bind: 37\n") ==
          strings{"cluster.yaml:3:3: error: receiver.auto_bind: must keep receiver.port + "
                  "auto_bind - 1 within 65535 (got 65500 + 37 - 1 = 65536)"});
    // Only the port is written: the default auto_bind is blamed at the port.
    CHECK(errors("receiver:\n  port: 65500\n") ==
          strings{"cluster.yaml:2:3: error: receiver.auto_bind: must keep receiver.port + "
                  "auto_bind - 1 within 65535 (got 65500 + 100 - 1 = 65599)"});
    // Port 0 asks the system for any port: there is no range.
    CHECK(errors("receiver:\n  port: 0\n  auto_bind: 4294967295\n").empty());
}

TEST_CASE("receiver.address and admin.address must not be empty", "[conf]") {
    CHECK(errors("receiver:\n  address: ''\nadmin:\n  address:\n") ==
          strings{"cluster.yaml:2:3: error: receiver.address: must not be empty",
                  "cluster.yaml:4:3: error: admin.address: must not be empty"});
}

TEST_CASE("sender.linger_us is from 0 to 100000", "[conf]") {
    CHECK(errors("sender:\n  linger_us: 100001\n") ==
          strings{"cluster.yaml:2:3: error: sender.linger_us: must be from 0 to 100000 (got 100001)"});
    CHECK(errors("sender:\n  linger_us: 0\n").empty());
    CHECK(errors("sender:\n  linger_us: 100000\n").empty());
    CHECK(errors("sender:\n  linger_us: 1ms\n") ==
          strings{"cluster.yaml:2:14: error: sender.linger_us: expected an integer from 0 to 4294967295 "
                  "(got '1ms')"});
}

TEST_CASE("sender timeouts must be greater than zero", "[conf]") {
    CHECK(errors(R"(sender:
  connect_timeout: 0ms
  ack_timeout: 0s
  block_timeout: 0m
  reconnect_backoff_max: 0h
)") == strings{
           "cluster.yaml:2:3: error: sender.connect_timeout: must be greater than 0 (got 0ms)",
           "cluster.yaml:3:3: error: sender.ack_timeout: must be greater than 0 (got 0ms)",
           "cluster.yaml:4:3: error: sender.block_timeout: must be greater than 0 (got 0ms)",
           "cluster.yaml:5:3: error: sender.reconnect_backoff_max: must be greater than 0 "
           "(got 0ms)",
       });
}

TEST_CASE("sender.queue_limit is at least 64KiB and may be below channel.max_message", "[conf]") {
    CHECK(errors("sender:\n  queue_limit: 1000\n") ==
          strings{"cluster.yaml:2:3: error: sender.queue_limit: must be at least 64KiB (got 1000)"});
    CHECK(errors("sender:\n  queue_limit: 64KiB\n").empty());
    // A larger message waits for an empty queue and goes alone (peer_sender).
    CHECK(errors("sender:\n  queue_limit: 1MiB\nchannel:\n  max_message: 128MiB\n").empty());
}

TEST_CASE("channel.max_message is between 1KiB and 1GiB", "[conf]") {
    CHECK(errors("channel:\n  max_message: 1023\n") ==
          strings{"cluster.yaml:2:3: error: channel.max_message: must be from 1KiB to 1GiB "
                  "(got 1023)"});
    CHECK(errors("channel:\n  max_message: 1KiB\n").empty());
    CHECK(errors("channel:\n  max_message: 1GiB\nsender:\n  queue_limit: 1GiB\n").empty());
    CHECK(errors("channel:\n  max_message: 1073741825\nsender:\n  queue_limit: 2GiB\n") ==
          strings{"cluster.yaml:2:3: error: channel.max_message: must be from 1KiB to 1GiB "
                  "(got 1073741825)"});
}

TEST_CASE("membership.multicast.address is an IPv4 multicast group", "[conf]") {
    CHECK(errors("membership:\n  multicast:\n    address: 10.0.0.1\n") ==
          strings{"cluster.yaml:3:5: error: membership.multicast.address: must be an IPv4 "
                  "multicast address, 224.0.0.0 to 239.255.255.255 (got '10.0.0.1')"});
    for (const char* bad : {"223.255.255.255", "240.0.0.0", "ff02::1", "228.0.0", "228.0.0.4.5",
                            "228.0.0.256", "228.00.0.4", "228.0.0.4 ", "", "all-nodes"}) {
        INFO(bad);
        CHECK(errors(std::string("membership:\n  multicast:\n    address: '") + bad + "'\n") ==
              strings{"cluster.yaml:3:5: error: membership.multicast.address: must be an IPv4 "
                      "multicast address, 224.0.0.0 to 239.255.255.255 (got '" +
                      std::string(bad) + "')"});
    }
    for (const char* good : {"224.0.0.0", "228.0.0.4", "239.255.255.255", "230.0.0.10"}) {
        INFO(good);
        CHECK(
            errors(std::string("membership:\n  multicast:\n    address: ") + good + "\n").empty());
    }
}

TEST_CASE("membership.multicast.interface is empty or an IPv4 address", "[conf]") {
    CHECK(errors("membership:\n  multicast:\n    interface: eth0\n") ==
          strings{"cluster.yaml:3:5: error: membership.multicast.interface: must be empty or an "
                  "IPv4 address (got 'eth0')"});
    CHECK(errors("membership:\n  multicast:\n    interface: '::1'\n") ==
          strings{"cluster.yaml:3:5: error: membership.multicast.interface: must be empty or an "
                  "IPv4 address (got '::1')"});
    CHECK(errors("membership:\n  multicast:\n    interface: 10.0.0.5\n").empty());
    CHECK(errors("membership:\n  multicast:\n    interface: 127.0.0.1\n").empty());
    CHECK(errors("membership:\n  multicast:\n    interface: ''\n").empty());
}

TEST_CASE("membership.multicast.ttl is from 0 to 255", "[conf]") {
    CHECK(errors("membership:\n  multicast:\n    ttl: 256\n") ==
          strings{"cluster.yaml:3:5: error: membership.multicast.ttl: must be from 0 to 255 (got "
                  "256)"});
    CHECK(errors("membership:\n  multicast:\n    ttl: 0\n").empty());
    CHECK(errors("membership:\n  multicast:\n    ttl: 255\n").empty());
}

TEST_CASE("membership.multicast.frequency must be greater than zero", "[conf]") {
    CHECK(errors("membership:\n  multicast:\n    frequency: 0ms\n") ==
          strings{"cluster.yaml:3:5: error: membership.multicast.frequency: must be greater than "
                  "0 (got 0ms)"});
}

TEST_CASE("membership.multicast.drop_time must exceed the heartbeat frequency", "[conf]") {
    CHECK(errors("membership:\n  multicast:\n    drop_time: 500ms\n    frequency: 1s\n") ==
          strings{"cluster.yaml:3:5: error: membership.multicast.drop_time: must exceed "
                  "membership.multicast.frequency (got 500ms <= 1s)"});
    CHECK(errors("membership:\n  multicast:\n    drop_time: 500ms\n") ==
          strings{"cluster.yaml:3:5: error: membership.multicast.drop_time: must exceed "
                  "membership.multicast.frequency (got 500ms <= 500ms)"});
    CHECK(errors("membership:\n  multicast:\n    drop_time: 501ms\n").empty());
    // drop_time left at its default: the position is the frequency's.
    CHECK(errors("membership:\n  multicast:\n    frequency: 5s\n") ==
          strings{"cluster.yaml:3:5: error: membership.multicast.drop_time: must exceed "
                  "membership.multicast.frequency (got 3s <= 5s)"});
    // A frequency of 0 is reported once, not again as a drop_time problem.
    CHECK(errors("membership:\n  multicast:\n    frequency: 0s\n    drop_time: 0s\n") ==
          strings{"cluster.yaml:3:5: error: membership.multicast.frequency: must be greater than "
                  "0 (got 0ms)"});
}

TEST_CASE("the multicast rules hold even while multicast is disabled", "[conf]") {
    CHECK(errors("membership:\n  multicast:\n    enabled: false\n    address: 10.0.0.1\n") ==
          strings{"cluster.yaml:4:5: error: membership.multicast.address: must be an IPv4 "
                  "multicast address, 224.0.0.0 to 239.255.255.255 (got '10.0.0.1')"});
}

TEST_CASE("a node without multicast and without static members is a cluster of one", "[conf]") {
    CHECK(errors("membership:\n  multicast:\n    enabled: false\n").empty());
    troupe::conf::cluster_config config;
    config.membership.multicast.enabled = false;
    CHECK(problems(config).empty());
}

TEST_CASE("membership.failure_detector intervals must be greater than zero", "[conf]") {
    CHECK(errors("membership:\n  failure_detector:\n    ping_interval: 0s\n    "
                 "verify_timeout: 0ms\n") ==
          strings{"cluster.yaml:3:5: error: membership.failure_detector.ping_interval: must be "
                  "greater than 0 (got 0ms)",
                  "cluster.yaml:4:5: error: membership.failure_detector.verify_timeout: must be "
                  "greater than 0 (got 0ms)"});
    // No rule ties the failure detector to the heartbeats or to the sender.
    CHECK(errors("membership:\n  failure_detector:\n    ping_interval: 1h\n    "
                 "verify_timeout: 1h\nsender:\n  ack_timeout: 1ms\nreceiver:\n  idle_timeout: 0s\n")
              .empty());
}

TEST_CASE("receiver.idle_timeout is 0 or outlasts two PING intervals and 1s", "[conf]") {
    CHECK(errors("receiver:\n  idle_timeout: 2s\nmembership:\n  failure_detector:\n"
                 "    ping_interval: 1s\n") ==
          strings{"cluster.yaml:2:3: error: receiver.idle_timeout: must be 0 (never) or exceed "
                  "twice membership.failure_detector.ping_interval (got 2s <= 2 x 1s)"});
    CHECK(errors("receiver:\n  idle_timeout: 2001ms\n").empty());
    CHECK(errors("receiver:\n  idle_timeout: 0s\n").empty());
    CHECK(errors("receiver:\n  idle_timeout: 900ms\nmembership:\n  failure_detector:\n"
                 "    ping_interval: 100ms\n") ==
          strings{"cluster.yaml:2:3: error: receiver.idle_timeout: must be 0 (never) or at least "
                  "1s (got 900ms)"});
    // idle_timeout left at its default (30s): the position is the ping interval's.
    CHECK(errors("membership:\n  failure_detector:\n    ping_interval: 15s\n") ==
          strings{"cluster.yaml:3:5: error: receiver.idle_timeout: must be 0 (never) or exceed "
                  "twice membership.failure_detector.ping_interval (got 30s <= 2 x 15s)"});
}

TEST_CASE("membership.payload keys are 1 to 32 bytes of name characters", "[conf]") {
    CHECK(errors("membership:\n  payload:\n    zone: a\n    my zone: b\n    '': c\n") ==
          strings{"cluster.yaml:4:5: error: membership.payload: key must be 1 to 32 bytes of "
                  "letters, digits, '.', '_' and '-' (got 'my zone')",
                  "cluster.yaml:5:5: error: membership.payload: key must be 1 to 32 bytes of "
                  "letters, digits, '.', '_' and '-' (got '')"});
    const std::string longest(32, 'k');
    CHECK(errors("membership:\n  payload:\n    " + longest + ": v\n").empty());
    CHECK(errors("membership:\n  payload:\n    " + longest + "x: v\n") ==
          strings{"cluster.yaml:3:5: error: membership.payload: key must be 1 to 32 bytes of "
                  "letters, digits, '.', '_' and '-' (got '" +
                  longest + "x')"});
    CHECK(errors("membership:\n  payload:\n    \"a\\tb\": v\n") ==
          strings{"cluster.yaml:3:5: error: membership.payload: key must be 1 to 32 bytes of "
                  "letters, digits, '.', '_' and '-' (got 'a\\x09b')"});
    CHECK(errors("membership:\n  payload:\n    App.Version_2-rc: v\n").empty());
}

TEST_CASE("membership.payload values are at most 128 bytes", "[conf]") {
    const std::string longest(128, 'v');
    CHECK(errors("membership:\n  payload:\n    zone: " + longest + "\n").empty());
    CHECK(errors("membership:\n  payload:\n    zone: a\n    rack: " + longest + "v\n") ==
          strings{"cluster.yaml:4:5: error: membership.payload.rack: must be at most 128 bytes "
                  "(got 129)"});
}

TEST_CASE("membership.payload has at most 16 entries", "[conf]") {
    std::string yaml = "membership:\n  payload:\n";
    for (int i = 0; i < 16; ++i) {
        yaml += "    k" + std::to_string(i) + ": v\n";
    }
    CHECK(errors(yaml).empty());
    CHECK(errors(yaml + "    k16: v\n") ==
          strings{"cluster.yaml:2:3: error: membership.payload: must have at most 16 entries "
                  "(got 17)"});
}

TEST_CASE("membership.payload fits in a heartbeat: at most 512 bytes in all", "[conf]") {
    // Five entries of a 12-byte key and a 128-byte value: 700 bytes.
    std::string yaml = "membership:\n  payload:\n";
    for (int i = 0; i < 5; ++i) {
        yaml += "    key-number-" + std::to_string(i) + ": " + std::string(128, 'v') + "\n";
    }
    CHECK(errors(yaml) == strings{"cluster.yaml:2:3: error: membership.payload: keys and values "
                                  "total 700 bytes; at most 512 fit in a heartbeat"});
    // Exactly 512: four entries of 128 bytes (a 1-byte key and a 127-byte value).
    std::string fits = "membership:\n  payload:\n";
    for (const char* key : {"a", "b", "c", "d"}) {
        fits += std::string("    ") + key + ": " + std::string(127, 'v') + "\n";
    }
    CHECK(errors(fits).empty());
    CHECK(errors(fits + "    e: ''\n") ==
          strings{"cluster.yaml:2:3: error: membership.payload: keys and values total 513 "
                  "bytes; at most 512 fit in a heartbeat"});
}

TEST_CASE("validate rejects a payload key listed twice in code", "[conf]") {
    troupe::conf::cluster_config config;
    config.membership.payload = {{"zone", "a"}, {"rack", "1"}, {"zone", "b"}};
    CHECK(problems(config) == strings{"error: membership.payload: key 'zone' is listed twice"});
}

TEST_CASE("membership.static ports are from 1 to 65535", "[conf]") {
    CHECK(errors("membership:\n  static:\n    - 127.0.0.1:0\n    - 127.0.0.1:65535\n") ==
          strings{"cluster.yaml:3:7: error: membership.static[0]: port must be from 1 to 65535 "
                  "(got '127.0.0.1:0')"});
    CHECK(errors("membership:\n  static: [127.0.0.1:65536]\n") ==
          strings{"cluster.yaml:2:12: error: membership.static[0]: port must be from 1 to 65535 "
                  "(got '127.0.0.1:65536')"});
}

TEST_CASE("membership.static entries need a host", "[conf]") {
    CHECK(errors("membership:\n  static: [':4001']\n") ==
          strings{"cluster.yaml:2:12: error: membership.static[0]: host must not be empty "
                  "(got ':4001')"});
}

TEST_CASE("membership.static entries must not repeat", "[conf]") {
    CHECK(errors(R"(membership:
  static:
    - 127.0.0.1:4001
    - 127.0.0.1:4002
    - 127.0.0.1:4001
    - "[::1]:4001"
    - "[::1]:4001"
)") == strings{"cluster.yaml:5:7: error: membership.static[2]: 127.0.0.1:4001 is listed "
               "twice (first as membership.static[0])",
               "cluster.yaml:7:7: error: membership.static[4]: [::1]:4001 is listed twice "
               "(first as membership.static[3])"});
}

TEST_CASE("logging.level lists the valid levels", "[conf]") {
    CHECK(errors("logging:\n  level: verbose\n") ==
          strings{"cluster.yaml:2:3: error: logging.level: expected one of trace, debug, info, "
                  "warn, error, critical, off (got 'verbose')"});
    for (const char* level : {"trace", "debug", "info", "warn", "error", "critical", "off"}) {
        CHECK(errors(std::string("logging:\n  level: ") + level + "\n").empty());
    }
}

TEST_CASE("admin.port must stay clear of the receiver's port range", "[conf]") {
    CHECK(errors("admin:\n  port: 4050\n") ==
          strings{"cluster.yaml:2:3: error: admin.port: must be outside the receiver's ports "
                  "4000..4099 (got 4050)"});
    CHECK(errors("admin:\n  port: 4100\n").empty());
    CHECK(errors("admin:\n  port: 4050\n  address: 10.0.0.5\n").empty());
    CHECK(errors("admin:\n  port: 4050\n  address: 0.0.0.0\n") ==
          strings{"cluster.yaml:2:3: error: admin.port: must be outside the receiver's ports "
                  "4000..4099 (got 4050)"});
    CHECK(errors("admin:\n  port: 4050\n  enabled: false\n").empty());
}

TEST_CASE("receiver.address must be an address peers can dial, not a wildcard", "[conf]") {
    CHECK(errors("receiver:\n  address: 0.0.0.0\n") ==
          strings{"cluster.yaml:2:3: error: receiver.address: must be the address peers reach this "
                  "node at, not a wildcard (got '0.0.0.0')"});
    CHECK(errors("receiver:\n  address: 10.0.0.5\n").empty());
}

TEST_CASE("validate checks rules a file cannot break but code can", "[conf]") {
    troupe::conf::cluster_config config;
    config.channel.stop_timeout = -1s;
    config.receiver.idle_timeout = -1s;
    config.membership.failure_detector.ping_interval = -10ms;
    config.membership.multicast.ttl = 1000;
    config.membership.multicast.drop_time = -1ms;
    config.membership.static_members = {{"10.0.0.1", 0}, {"", 4000}};
    CHECK(problems(config) ==
          strings{"error: membership.static[0]: port must be from 1 to 65535 (got '10.0.0.1:0')",
                  "error: membership.static[1]: host must not be empty (got ':4000')",
                  "error: membership.multicast.ttl: must be from 0 to 255 (got 1000)",
                  "error: membership.multicast.drop_time: must exceed "
                  "membership.multicast.frequency (got -1ms <= 500ms)",
                  "error: membership.failure_detector.ping_interval: must be greater than 0 (got "
                  "-10ms)",
                  "error: receiver.idle_timeout: must not be negative (got -1000ms)",
                  "error: channel.stop_timeout: must not be negative (got -1000ms)"});
}

TEST_CASE("rules are not applied to values the file failed to set", "[conf]") {
    // frequency is unreadable, so comparing its default with drop_time would
    // report a value nobody wrote; only the type error shows.
    CHECK(errors("membership:\n  multicast:\n    frequency: often\n    drop_time: 100ms\n") ==
          strings{"cluster.yaml:3:16: error: membership.multicast.frequency: expected a duration "
                  "like 500ms or 3s (got 'often')"});
}

TEST_CASE("http.threads is from 1 to 64 and http.address must not be empty", "[conf]") {
    CHECK(errors("http:\n  threads: 0\n") ==
          strings{"cluster.yaml:2:3: error: http.threads: must be from 1 to 64 (got 0)"});
    CHECK(errors("http:\n  threads: 65\n") ==
          strings{"cluster.yaml:2:3: error: http.threads: must be from 1 to 64 (got 65)"});
    CHECK(errors("http:\n  threads: 64\n").empty());
    CHECK(errors("http:\n  address: ''\n") ==
          strings{"cluster.yaml:2:3: error: http.address: must not be empty"});
    // The HTTP front may listen on every interface, unlike the receiver.
    CHECK(errors("http:\n  address: 0.0.0.0\n").empty());
}

TEST_CASE("http keys never make a file for troupe-node invalid", "[conf]") {
    // troupe-node ignores http.*: its admin or receiver ports may be anything,
    // 8080 included (troupe-httpd would report the collision when it binds).
    CHECK(errors("admin:\n  port: 8080\n").empty());
    CHECK(errors("receiver:\n  port: 8000\n").empty());
}

TEST_CASE("manager.type lists the valid managers", "[conf]") {
    CHECK(errors("manager:\n  type: buddy\n") ==
          strings{"cluster.yaml:2:3: error: manager.type: expected one of backup, delta, standard (got "
                  "'buddy')"});
    CHECK(errors("manager:\n  type: standard\n").empty());
    CHECK(errors("manager:\n  type: delta\n").empty());
    CHECK(errors("manager:\n  type: backup\n").empty());
}

TEST_CASE("manager.context is 1 to 255 bytes", "[conf]") {
    CHECK(errors("manager:\n  context: ''\n") ==
          strings{"cluster.yaml:2:3: error: manager.context: must not be empty"});
    CHECK(errors("manager:\n  context: " + std::string(256, 'c') + "\n") ==
          strings{"cluster.yaml:2:3: error: manager.context: must be at most 255 bytes (got 256)"});
    CHECK(errors("manager:\n  context: /shop\n").empty());
}

TEST_CASE("manager.cookie is a cookie name", "[conf]") {
    CHECK(errors("manager:\n  cookie: ''\n") ==
          strings{"cluster.yaml:2:3: error: manager.cookie: must not be empty"});
    CHECK(errors("manager:\n  cookie: my session\n") ==
          strings{"cluster.yaml:2:3: error: manager.cookie: must be a cookie name: visible ASCII "
                  "without spaces or ()<>@,;:\\\"/[]?={} (got 'my session')"});
    CHECK(errors("manager:\n  cookie: 'SID=1'\n") ==
          strings{"cluster.yaml:2:3: error: manager.cookie: must be a cookie name: visible ASCII "
                  "without spaces or ()<>@,;:\\\"/[]?={} (got 'SID=1')"});
    CHECK(errors("manager:\n  cookie: JSESSIONID\n").empty());
    CHECK(errors("manager:\n  cookie: __Host-sid\n").empty());
}

TEST_CASE("manager.cookie_path, cookie_same_site and cookie_max_age are checked where they are written",
          "[conf]") {
    CHECK(errors("manager:\n  cookie_path: /app\n  cookie_same_site: strict\n  cookie_max_age: 8h\n").empty());
    CHECK(errors("manager:\n  cookie_path: app\n") ==
          strings{"cluster.yaml:2:3: error: manager.cookie_path: must start with '/' (got 'app')"});
    CHECK(errors("manager:\n  cookie_path: '/a;b'\n") ==
          strings{"cluster.yaml:2:3: error: manager.cookie_path: must be visible ASCII without spaces or ';' "
                  "(got '/a;b')"});
    CHECK(errors("manager:\n  cookie_same_site: Relaxed\n") ==
          strings{"cluster.yaml:2:3: error: manager.cookie_same_site: expected one of lax, strict, none "
                  "(got 'Relaxed')"});
    // Browsers drop SameSite=None without Secure: a setting that would do nothing.
    CHECK(errors("manager:\n  cookie_same_site: none\n") ==
          strings{"cluster.yaml:2:3: error: manager.cookie_same_site: none needs the Secure attribute too "
                  "(manager.cookie_secure: true): browsers drop a SameSite=None cookie without it"});
    CHECK(errors("manager:\n  cookie_same_site: none\n  cookie_secure: true\n").empty());
    CHECK(errors("manager:\n  cookie_max_age: 1500ms\n") ==
          strings{"cluster.yaml:2:3: error: manager.cookie_max_age: must be a whole, non-negative number of "
                  "seconds (got 1500ms); 0: no Max-Age"});
}

TEST_CASE("manager.filter must compile as a regular expression, with the error's place", "[conf]") {
    CHECK(errors("manager:\n  filter: '^/static/(.*'\n") ==
          strings{"cluster.yaml:2:3: error: manager.filter: not a valid regular expression: "
                  "unmatched '(' or ')' at character 10 (got '^/static/(.*')"});
    CHECK(errors("manager:\n  filter: '.*[.png'\n") ==
          strings{"cluster.yaml:2:3: error: manager.filter: not a valid regular expression: "
                  "unmatched '[' or ']' at character 3 (got '.*[.png')"});
    CHECK(errors("manager:\n  filter: '[z-a]'\n") ==
          strings{"cluster.yaml:2:3: error: manager.filter: not a valid regular expression: "
                  "invalid character range at character 1 (got '[z-a]')"});
    CHECK(errors("manager:\n  filter: '*.png'\n") ==
          strings{"cluster.yaml:2:3: error: manager.filter: not a valid regular expression: "
                  "nothing to repeat before '*' at character 1 (got '*.png')"});
    CHECK(errors("manager:\n  filter: '.*\\.png|+x'\n") ==
          strings{"cluster.yaml:2:3: error: manager.filter: not a valid regular expression: "
                  "nothing to repeat before '+' at character 9 (got '.*\\.png|+x')"});
    CHECK(errors("manager:\n  filter: 'x{2,1}'\n") ==
          strings{"cluster.yaml:2:3: error: manager.filter: not a valid regular expression: "
                  "invalid repeat count in '{}' at character 2 (got 'x{2,1}')"});
    CHECK(errors("manager:\n  filter: 'a\\'\n") ==
          strings{"cluster.yaml:2:3: error: manager.filter: not a valid regular expression: "
                  "invalid escape or trailing backslash at character 2 (got 'a\\')"});
    // Empty: no path is filtered, every request may replicate.
    CHECK(errors("manager:\n  filter: ''\n").empty());
    CHECK(errors("manager:\n  filter: '^/(img|css)/.*|.*\\.ico$'\n").empty());
}

TEST_CASE("manager.max_inactive is a whole number of seconds, 0 for never", "[conf]") {
    CHECK(errors("manager:\n  max_inactive: 1500ms\n") ==
          strings{"cluster.yaml:2:3: error: manager.max_inactive: must be a whole number of "
                  "seconds (got 1500ms)"});
    CHECK(errors("manager:\n  max_inactive: 2000ms\n").empty());
    CHECK(errors("manager:\n  max_inactive: 0s\n").empty());
}

TEST_CASE("manager.state_transfer_timeout must be greater than zero", "[conf]") {
    CHECK(errors("manager:\n  state_transfer_timeout: 0ms\n") ==
          strings{"cluster.yaml:2:3: error: manager.state_transfer_timeout: must be greater than 0 "
                  "(got 0ms)"});
}

TEST_CASE("validate checks the manager rules a config built in code can break", "[conf]") {
    troupe::conf::cluster_config config;
    config.cluster.node = "n1";
    config.manager.send_options = 4;
    config.manager.max_inactive = -1s;
    config.manager.state_transfer_timeout = -5ms;
    config.http.threads = 0;
    CHECK(problems(config) ==
          strings{"error: http.threads: must be from 1 to 64 (got 0)",
                  "error: manager.max_inactive: must not be negative (got -1000ms)",
                  "error: manager.send_options: expected async, ack, sync or 8, 2, 6 (got 4)",
                  "error: manager.state_transfer_timeout: must be greater than 0 (got -5ms)"});
}

TEST_CASE("metrics.statsd: an address turns it on, and each value is checked where it is written", "[conf]") {
    CHECK(errors("metrics:\n  statsd:\n    address: 127.0.0.1\n    port: 9125\n    prefix: shop.web\n"
                 "    interval: 2s\n")
              .empty());
    CHECK(errors("metrics:\n  statsd:\n    address: statsd.local\n") ==
          strings{"cluster.yaml:3:5: error: metrics.statsd.address: must be an IPv4 address such as "
                  "127.0.0.1 (got 'statsd.local')"});
    CHECK(errors("metrics:\n  statsd:\n    address: 127.0.0.1\n    prefix: 'a b'\n") ==
          strings{"cluster.yaml:4:5: error: metrics.statsd.prefix: must be 1 to 100 letters, digits, '_', "
                  "'-' or inner '.' (got 'a b')"});
    CHECK(errors("metrics:\n  statsd:\n    address: 127.0.0.1\n    interval: 10ms\n") ==
          strings{"cluster.yaml:4:5: error: metrics.statsd.interval: must be at least 100ms (got 10ms)"});
}

TEST_CASE("metrics.statsd settings without an address would do nothing: an error with a hint", "[conf]") {
    const auto found = errors("metrics:\n  statsd:\n    prefix: shop\n");
    REQUIRE(found.size() == 1);
    CHECK_THAT(found[0], Catch::Contains("metrics.statsd.address: is empty, so statsd is off") &&
                             Catch::Contains("set the statsd server's address"));
}

TEST_CASE("membership.dns: a host name turns it on, and each value is checked where it is written", "[conf]") {
    CHECK(errors("membership:\n  dns:\n    name: troupe.shop.svc.cluster.local\n    port: 4000\n"
                 "    interval: 2s\n")
              .empty());
    CHECK(errors("membership:\n  dns:\n    name: web-1.\n").empty()); // a trailing dot: fully qualified
    CHECK(errors("membership:\n  dns:\n    name: 'bad_name.local'\n") ==
          strings{"cluster.yaml:3:5: error: membership.dns.name: must be a host name: dot-separated labels of "
                  "letters, digits and inner '-', 63 characters each at most (got 'bad_name.local')"});
    CHECK(errors("membership:\n  dns:\n    name: a..b\n").size() == 1);
    CHECK(errors("membership:\n  dns:\n    name: -a.b\n").size() == 1);
    CHECK(errors("membership:\n  dns:\n    name: " + std::string(64, 'x') + ".lab\n").size() == 1);
    CHECK(errors("membership:\n  dns:\n    name: troupe.lab\n    interval: 10ms\n") ==
          strings{"cluster.yaml:4:5: error: membership.dns.interval: must be from 100ms to 1h (got 10ms)"});
}

TEST_CASE("membership.dns settings without a name would do nothing: an error with a hint", "[conf]") {
    const auto found = errors("membership:\n  dns:\n    interval: 1s\n");
    REQUIRE(found.size() == 1);
    CHECK_THAT(found[0], Catch::Contains("membership.dns.name: is empty, so DNS discovery is off"));
}

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

TEST_CASE("sender timeouts and keepalive must be greater than zero", "[conf]") {
    CHECK(errors(R"(sender:
  connect_timeout: 0ms
  ack_timeout: 0s
  block_timeout: 0m
  keepalive: 0h
  reconnect_backoff_max: 0ms
membership:
  drop_time: 1s
)") == strings{
           "cluster.yaml:2:3: error: sender.connect_timeout: must be greater than 0 (got 0ms)",
           "cluster.yaml:3:3: error: sender.ack_timeout: must be greater than 0 (got 0ms)",
           "cluster.yaml:4:3: error: sender.block_timeout: must be greater than 0 (got 0ms)",
           "cluster.yaml:5:3: error: sender.keepalive: must be greater than 0 (got 0ms)",
           "cluster.yaml:6:3: error: sender.reconnect_backoff_max: must be greater than 0 "
           "(got 0ms)",
       });
}

TEST_CASE("sender.queue_limit must hold at least one message of channel.max_message", "[conf]") {
    CHECK(errors("sender:\n  queue_limit: 1MiB\n") ==
          strings{"cluster.yaml:2:3: error: sender.queue_limit: must be at least "
                  "channel.max_message (got 1MiB < 16MiB)"});
    CHECK(errors("sender:\n  queue_limit: 16MiB\n").empty());
    // queue_limit left at its default: the position is that of the key that broke the rule.
    CHECK(errors("channel:\n  max_message: 128MiB\n") ==
          strings{"cluster.yaml:2:3: error: sender.queue_limit: must be at least "
                  "channel.max_message (got 64MiB < 128MiB)"});
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

TEST_CASE("membership.drop_time must exceed sender.keepalive", "[conf]") {
    CHECK(errors("membership:\n  drop_time: 1s\n") ==
          strings{"cluster.yaml:2:3: error: membership.drop_time: must be greater than "
                  "sender.keepalive (got 1s <= 1s)"});
    CHECK(errors("membership:\n  drop_time: 1001ms\n").empty());
    CHECK(errors("sender:\n  keepalive: 5s\n") ==
          strings{"cluster.yaml:2:3: error: membership.drop_time: must be greater than "
                  "sender.keepalive (got 3s <= 5s)"});
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

TEST_CASE("validate checks rules a file cannot break but code can", "[conf]") {
    troupe::conf::cluster_config config;
    config.channel.send_options = 5;
    config.channel.stop_timeout = -1s;
    config.sender.keepalive = -10ms;
    config.membership.static_members = {{"10.0.0.1", 0}, {"", 4000}};
    CHECK(problems(config) ==
          strings{"error: membership.static[0]: port must be from 1 to 65535 (got '10.0.0.1:0')",
                  "error: membership.static[1]: host must not be empty (got ':4000')",
                  "error: sender.keepalive: must be greater than 0 (got -10ms)",
                  "error: channel.send_options: expected async, ack, sync or 8, 2, 6 (got 5)",
                  "error: channel.stop_timeout: must not be negative (got -1000ms)"});
}

TEST_CASE("rules are not applied to values the file failed to set", "[conf]") {
    // queue_limit is unreadable, so comparing its default with max_message would
    // report a value nobody wrote; only the type error shows.
    CHECK(errors("sender:\n  queue_limit: lots\nchannel:\n  max_message: 128MiB\n") ==
          strings{"cluster.yaml:2:16: error: sender.queue_limit: expected a size like 64MiB, "
                  "512KiB or 1000 (got 'lots')"});
}

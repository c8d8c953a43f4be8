// SPDX-License-Identifier: Apache-2.0
#include <troupe/conf/load.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <string>

using namespace std::chrono_literals;

namespace {

// Field by field, so that a key to_yaml() forgets cannot hide behind an
// equally forgetful comparison of two to_yaml() outputs.
void check_same(const troupe::conf::cluster_config& a, const troupe::conf::cluster_config& b) {
    CHECK(a.cluster.name == b.cluster.name);
    CHECK(a.cluster.node == b.cluster.node);
    CHECK(a.cluster.secret == b.cluster.secret);
    CHECK(a.receiver.address == b.receiver.address);
    CHECK(a.receiver.port == b.receiver.port);
    CHECK(a.receiver.auto_bind == b.receiver.auto_bind);
    CHECK(a.receiver.threads == b.receiver.threads);
    CHECK(a.receiver.reader_threads == b.receiver.reader_threads);
    CHECK(a.receiver.idle_timeout == b.receiver.idle_timeout);
    CHECK(a.membership.static_members == b.membership.static_members);
    CHECK(a.membership.multicast.enabled == b.membership.multicast.enabled);
    CHECK(a.membership.multicast.address == b.membership.multicast.address);
    CHECK(a.membership.multicast.port == b.membership.multicast.port);
    CHECK(a.membership.multicast.interface == b.membership.multicast.interface);
    CHECK(a.membership.multicast.ttl == b.membership.multicast.ttl);
    CHECK(a.membership.multicast.frequency == b.membership.multicast.frequency);
    CHECK(a.membership.multicast.drop_time == b.membership.multicast.drop_time);
    CHECK(a.membership.failure_detector.ping_interval ==
          b.membership.failure_detector.ping_interval);
    CHECK(a.membership.failure_detector.verify_timeout ==
          b.membership.failure_detector.verify_timeout);
    CHECK(a.membership.payload == b.membership.payload);
    CHECK(a.sender.connect_timeout == b.sender.connect_timeout);
    CHECK(a.sender.ack_timeout == b.sender.ack_timeout);
    CHECK(a.sender.queue_limit == b.sender.queue_limit);
    CHECK(a.sender.on_queue_full == b.sender.on_queue_full);
    CHECK(a.sender.block_timeout == b.sender.block_timeout);
    CHECK(a.sender.reconnect_backoff_max == b.sender.reconnect_backoff_max);
    CHECK(a.sender.linger_us == b.sender.linger_us);
    CHECK(a.channel.max_message == b.channel.max_message);
    CHECK(a.channel.stop_timeout == b.channel.stop_timeout);
    CHECK(a.admin.enabled == b.admin.enabled);
    CHECK(a.admin.address == b.admin.address);
    CHECK(a.admin.port == b.admin.port);
    CHECK(a.http.address == b.http.address);
    CHECK(a.http.port == b.http.port);
    CHECK(a.http.threads == b.http.threads);
    CHECK(a.manager.type == b.manager.type);
    CHECK(a.manager.context == b.manager.context);
    CHECK(a.manager.cookie == b.manager.cookie);
    CHECK(a.manager.cookie_secure == b.manager.cookie_secure);
    CHECK(a.manager.filter == b.manager.filter);
    CHECK(a.manager.max_inactive == b.manager.max_inactive);
    CHECK(a.manager.send_options == b.manager.send_options);
    CHECK(a.manager.on_replication_failure == b.manager.on_replication_failure);
    CHECK(a.manager.notify_listeners_on_replication == b.manager.notify_listeners_on_replication);
    CHECK(a.manager.expire_sessions_on_shutdown == b.manager.expire_sessions_on_shutdown);
    CHECK(a.manager.state_transfer_timeout == b.manager.state_transfer_timeout);
    CHECK(a.logging.level == b.logging.level);
    CHECK(a.logging.file == b.logging.file);
}

} // namespace

TEST_CASE("to_yaml prints every key of the defaults", "[conf]") {
    troupe::conf::cluster_config config;
    config.cluster.node = "n1";
    CHECK(troupe::conf::to_yaml(config) == R"(cluster:
  name: troupe
  node: n1
  secret: ""
receiver:
  address: 127.0.0.1
  port: 4000
  auto_bind: 100
  threads: 1
  reader_threads: 64
  idle_timeout: 30s
membership:
  static: []
  dns:
    name: ""
    port: 0
    interval: 5s
  multicast:
    enabled: true
    address: 228.0.0.4
    port: 45564
    interface: ""
    ttl: 1
    frequency: 500ms
    drop_time: 3s
  failure_detector:
    ping_interval: 1s
    verify_timeout: 1s
  payload: {}
sender:
  connect_timeout: 1s
  ack_timeout: 3s
  queue_limit: 4MiB
  on_queue_full: block
  block_timeout: 1s
  reconnect_backoff_max: 1s
  linger_us: 300
channel:
  max_message: 16MiB
  stop_timeout: 5s
admin:
  enabled: true
  address: 127.0.0.1
  port: 0
http:
  address: 127.0.0.1
  port: 8080
  threads: 2
manager:
  type: delta
  context: app
  cookie: TROUPE_SESSION
  cookie_secure: false
  cookie_path: /
  cookie_same_site: lax
  cookie_max_age: 0ms
  filter: .*\.(gif|jpg|jpeg|png|ico|css|js|txt|html?)$|^/static/.*
  skip_paths: ""
  skip_headers: []
  route_rewrite: true
  max_inactive: 30m
  send_options: async
  on_replication_failure: log
  notify_listeners_on_replication: true
  expire_sessions_on_shutdown: false
  state_transfer_timeout: 1m
metrics:
  statsd:
    address: ""
    port: 8125
    prefix: troupe
    interval: 10s
logging:
  level: info
  file: ""
)");
}

TEST_CASE("to_yaml lists static members one per line", "[conf]") {
    troupe::conf::cluster_config config;
    config.membership.static_members = {{"127.0.0.1", 4001}, {"::1", 4002}};
    const auto text = troupe::conf::to_yaml(config);
    CHECK(text.find("  static:\n    - 127.0.0.1:4001\n    - \"[::1]:4002\"\n") !=
          std::string::npos);
}

TEST_CASE("to_yaml output loads back to the same config", "[conf]") {
    troupe::conf::cluster_config config;
    config.cluster.name = "round.trip";
    config.cluster.node = "null"; // a YAML null word, which must come back as text
    config.cluster.secret = "#not a comment: 'quoted' \"twice\"";
    config.receiver.address = "::1";
    config.receiver.port = 0;
    config.receiver.auto_bind = 1;
    config.receiver.threads = 64;
    config.receiver.reader_threads = 1024;
    config.membership.static_members = {{"127.0.0.1", 4001}, {"::1", 4002}, {"node-3", 65535}};
    config.membership.multicast.enabled = false;
    config.membership.multicast.address = "239.255.255.255";
    config.membership.multicast.port = 0;
    config.membership.multicast.interface = "10.0.0.5";
    config.membership.multicast.ttl = 255;
    config.membership.multicast.frequency = 1001ms;
    config.membership.multicast.drop_time = 3h;
    config.membership.failure_detector.ping_interval = 1ms;
    config.membership.failure_detector.verify_timeout = 90s;
    // Values YAML would read as something else unless quoted, in a non-sorted order.
    config.membership.payload = {
        {"zone", "eu-1a"}, {"null", "~"},       {"empty", ""},     {"true", "true"},
        {"n", "null"},     {"list", "[a, b]"},  {"colon", "a: b"}, {"hash", "#x"},
        {"dash", "- x"},   {"a.b", " padded "},
    };
    config.sender.connect_timeout = 1500ms;
    config.sender.ack_timeout = 30min;
    config.sender.queue_limit = 1000000001;
    config.sender.on_queue_full = troupe::conf::queue_full_policy::fail;
    config.sender.block_timeout = 1ms;
    config.sender.reconnect_backoff_max = 61s;
    config.sender.linger_us = 0;
    config.channel.max_message = 1000000;
    config.channel.stop_timeout = 0ms;
    config.admin.enabled = false;
    config.admin.address = "10.0.0.5";
    config.admin.port = 65535;
    config.http.address = "0.0.0.0";
    config.http.port = 0;
    config.http.threads = 64;
    config.manager.type = "standard";
    config.manager.context = "shop/cart: 'x'";
    config.manager.cookie = "JSESSIONID";
    config.manager.cookie_secure = true;
    config.manager.filter = R"(^/(img|css)/.*|.*\.ico$|# not a comment)";
    config.manager.max_inactive = 90s;
    config.manager.send_options = 6;
    config.manager.on_replication_failure = troupe::conf::replication_failure_policy::fail;
    config.manager.notify_listeners_on_replication = false;
    config.manager.expire_sessions_on_shutdown = true;
    config.manager.state_transfer_timeout = 1500ms;
    config.logging.level = "off";
    config.logging.file = "/var/log/troupe node.log";
    REQUIRE(troupe::conf::validate(config).empty());

    const auto text = troupe::conf::to_yaml(config);
    INFO(text);
    const auto back = troupe::conf::load_string(text, "to_yaml");
    check_same(config, back);
    CHECK(troupe::conf::to_yaml(back) == text);
}

TEST_CASE("to_yaml of a loaded example loads back unchanged", "[conf]") {
    const auto config =
        troupe::conf::load_file(std::string(TROUPE_CONF_EXAMPLES) + "/production.yaml");
    const auto back = troupe::conf::load_string(troupe::conf::to_yaml(config), "to_yaml");
    check_same(config, back);
}

TEST_CASE("to_yaml lists the payload as a map in its own order", "[conf]") {
    troupe::conf::cluster_config config;
    config.membership.payload = {{"zone", "eu-1a"}, {"rack", "r12"}, {"app", "2"}};
    const auto text = troupe::conf::to_yaml(config);
    CHECK(text.find("  payload:\n    zone: eu-1a\n    rack: r12\n    app: 2\nsender:\n") !=
          std::string::npos);
}

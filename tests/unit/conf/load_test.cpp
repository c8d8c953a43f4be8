// SPDX-License-Identifier: Apache-2.0
#include <troupe/conf/load.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

using namespace std::chrono_literals;
using strings = std::vector<std::string>;
using pairs = std::vector<std::pair<std::string, std::string>>;
namespace fs = std::filesystem;

namespace {

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

strings file_errors(const std::string& path, const strings& overrides = {}) {
    try {
        (void)troupe::conf::load_file(path, overrides);
    } catch (const troupe::conf::config_error& e) {
        strings printed;
        for (const auto& d : e.diagnostics()) {
            printed.push_back(d.str());
        }
        return printed;
    }
    return {};
}

// A directory of its own under the system temp dir, removed at scope exit.
class temp_dir {
public:
    temp_dir()
        : path_(fs::temp_directory_path() / ("troupe-conf-" + std::to_string(::getpid()))) {
        fs::create_directories(path_);
    }

    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;

    ~temp_dir() {
        std::error_code ignored;
        fs::remove_all(path_, ignored);
    }

    std::string write(const std::string& name, const std::string& text) const {
        const auto file = path_ / name;
        std::ofstream(file) << text;
        return file.string();
    }

    const fs::path& path() const { return path_; }

private:
    fs::path path_;
};

std::string short_host_name() {
    char buffer[256] = {};
    REQUIRE(::gethostname(buffer, sizeof buffer - 1) == 0);
    const std::string name(buffer);
    return name.substr(0, name.find('.'));
}

} // namespace

TEST_CASE("diagnostic prints compiler-style with file, position and path", "[conf]") {
    troupe::conf::diagnostic d{"cluster.yaml", 7, 5, "sender.ack_timeout", "must be positive"};
    CHECK(d.str() == "cluster.yaml:7:5: error: sender.ack_timeout: must be positive");
    d.line = 0;
    CHECK(d.str() == "cluster.yaml: error: sender.ack_timeout: must be positive");
    d.path.clear();
    CHECK(d.str() == "cluster.yaml: error: must be positive");
    d.file.clear();
    CHECK(d.str() == "error: must be positive");
}

TEST_CASE("config_error::what joins every diagnostic with newlines", "[conf]") {
    const troupe::conf::config_error e(
        {{"a.yaml", 1, 2, "x", "first"}, {"--set", 1, 3, "", "second"}});
    CHECK(std::string(e.what()) == "a.yaml:1:2: error: x: first\n--set:1:3: error: second");
    CHECK(e.diagnostics().size() == 2);
}

TEST_CASE("load_file reports a missing file with the system's reason", "[conf]") {
    const temp_dir dir;
    const auto missing = (dir.path() / "cluster.yaml").string();
    CHECK(file_errors(missing) ==
          strings{missing + ": error: cannot read file: No such file or directory"});
    CHECK(file_errors(dir.path().string()) ==
          strings{dir.path().string() + ": error: cannot read file: Is a directory"});
}

TEST_CASE("load_file reads a file and names it in diagnostics", "[conf]") {
    const temp_dir dir;
    const auto good = dir.write("good.yaml", "cluster:\n  name: filed\n  node: n1\n");
    const auto config = troupe::conf::load_file(good);
    CHECK(config.cluster.name == "filed");
    CHECK(config.cluster.node == "n1");
    const auto bad = dir.write("bad.yaml", "receiver:\n  port: x\n");
    CHECK(
        file_errors(bad) ==
        strings{bad + ":2:9: error: receiver.port: expected an integer from 0 to 65535 (got 'x')"});
}

TEST_CASE("an unreadable file still gets its overrides checked", "[conf]") {
    CHECK(file_errors("/nonexistent/cluster.yaml", {"recever.port=1"}) ==
          strings{"/nonexistent/cluster.yaml: error: cannot read file: No such file or directory",
                  "--set:1:1: error: recever: unknown key 'recever' (did you mean 'receiver'?)"});
}

TEST_CASE("a YAML syntax error carries yaml-cpp's position and message", "[conf]") {
    CHECK(errors("receiver:\n\tport: 4000\n") ==
          strings{"cluster.yaml:2:6: error: illegal map value"});
    CHECK(errors("membership:\n  static: [127.0.0.1:4001\n") ==
          strings{"cluster.yaml:3:1: error: end of sequence flow not found"});
}

TEST_CASE("an empty file or a file of comments keeps every default", "[conf]") {
    const auto empty = troupe::conf::load_string("", "empty.yaml");
    const auto comments = troupe::conf::load_string("# nothing yet\n", "comments.yaml");
    const troupe::conf::cluster_config defaults;
    CHECK(empty.cluster.name == defaults.cluster.name);
    CHECK(empty.receiver.port == defaults.receiver.port);
    CHECK(comments.sender.queue_limit == defaults.sender.queue_limit);
}

TEST_CASE("the file must be a map of sections in a single document", "[conf]") {
    CHECK(errors("- cluster\n") ==
          strings{"cluster.yaml:1:1: error: expected a map of sections (got a list)"});
    CHECK(errors("hello\n") ==
          strings{"cluster.yaml:1:1: error: expected a map of sections (got 'hello')"});
    CHECK(errors("cluster:\n  name: a\n---\ncluster:\n  name: b\n") ==
          strings{"cluster.yaml:4:1: error: expected one YAML document (found a second one)"});
}

TEST_CASE("an unknown section is reported at its key with the nearest valid name", "[conf]") {
    CHECK(errors("recever:\n  port: 4000\n") ==
          strings{"cluster.yaml:1:1: error: recever: unknown key 'recever' (did you mean "
                  "'receiver'?)"});
    CHECK(errors("Sender: {}\n") ==
          strings{"cluster.yaml:1:1: error: Sender: unknown key 'Sender' (did you mean "
                  "'sender'?)"});
    CHECK(errors("log:\n  level: info\n") ==
          strings{"cluster.yaml:1:1: error: log: unknown key 'log' (did you mean 'logging'?)"});
    CHECK(errors("colour: blue\n") ==
          strings{"cluster.yaml:1:1: error: colour: unknown key 'colour'"});
}

TEST_CASE("an unknown nested key is reported at its key with the nearest valid name", "[conf]") {
    CHECK(errors("sender:\n  ack_timout: 3s\n") ==
          strings{"cluster.yaml:2:3: error: sender.ack_timout: unknown key 'ack_timout' (did "
                  "you mean 'ack_timeout'?)"});
    CHECK(errors("sender:\n  akc_timeout: 3s\n") ==
          strings{"cluster.yaml:2:3: error: sender.akc_timeout: unknown key 'akc_timeout' (did "
                  "you mean 'ack_timeout'?)"});
    CHECK(errors("membership:\n  static_members: []\n") ==
          strings{"cluster.yaml:2:3: error: membership.static_members: unknown key "
                  "'static_members' (did you mean 'static'?)"});
    CHECK(errors("receiver:\n  colour: blue\n") ==
          strings{"cluster.yaml:2:3: error: receiver.colour: unknown key 'colour'"});
}

TEST_CASE("a key written in the wrong section is pointed to its home", "[conf]") {
    CHECK(errors("sender:\n  drop_time: 3s\n") ==
          strings{"cluster.yaml:2:3: error: sender.drop_time: unknown key 'drop_time' (did you "
                  "mean 'membership.multicast.drop_time'?)"});
    CHECK(errors("static: [127.0.0.1:4001]\n") ==
          strings{"cluster.yaml:1:1: error: static: unknown key 'static' (did you mean "
                  "'membership.static'?)"});
    // `port` lives in two sections: no guess.
    CHECK(errors("port: 4000\n") == strings{"cluster.yaml:1:1: error: port: unknown key 'port'"});
}

TEST_CASE("a key written twice in one map is an error at the second", "[conf]") {
    CHECK(errors("receiver:\n  port: 4001\n  port: 4002\n") ==
          strings{"cluster.yaml:3:3: error: receiver.port: duplicate key 'port' (first at line "
                  "2)"});
    CHECK(errors("sender: {}\nsender: {}\n") ==
          strings{"cluster.yaml:2:1: error: sender: duplicate key 'sender' (first at line 1)"});
}

TEST_CASE("a section that is not a map is reported at its value", "[conf]") {
    CHECK(errors("receiver: 4000\n") ==
          strings{"cluster.yaml:1:11: error: receiver: expected a map (got '4000')"});
    CHECK(errors("sender:\n  - 1s\n") ==
          strings{"cluster.yaml:2:3: error: sender: expected a map (got a list)"});
    // A section whose keys are all commented out is simply empty.
    CHECK(errors("sender:\n  # ack_timeout: 3s\n").empty());
}

TEST_CASE("a duration of the wrong form is reported at the value", "[conf]") {
    CHECK(errors("sender:\n  ack_timeout: fast\n") ==
          strings{"cluster.yaml:2:16: error: sender.ack_timeout: expected a duration like 500ms "
                  "or 3s (got 'fast')"});
    CHECK(errors("sender:\n  ack_timeout: 3000\n") ==
          strings{"cluster.yaml:2:16: error: sender.ack_timeout: missing unit: expected a "
                  "duration like 500ms or 3s (got '3000')"});
    CHECK(errors("sender:\n  ack_timeout: [3s]\n") ==
          strings{"cluster.yaml:2:16: error: sender.ack_timeout: expected a duration like 500ms "
                  "or 3s (got a list)"});
    // An empty value points at the key: yaml-cpp would point at the next line.
    CHECK(errors("sender:\n  ack_timeout:\n  block_timeout: 1s\n") ==
          strings{"cluster.yaml:2:3: error: sender.ack_timeout: expected a duration like 500ms "
                  "or 3s (got nothing)"});
}

TEST_CASE("a port outside 0..65535 is reported at the value", "[conf]") {
    CHECK(errors("receiver:\n  port: 70000\n") ==
          strings{"cluster.yaml:2:9: error: receiver.port: expected an integer from 0 to 65535 "
                  "(got '70000')"});
    CHECK(errors("admin:\n  port: -1\n") ==
          strings{"cluster.yaml:2:9: error: admin.port: expected an integer from 0 to 65535 "
                  "(got '-1')"});
    CHECK(errors("admin:\n  port: 0x10\n") ==
          strings{"cluster.yaml:2:9: error: admin.port: expected an integer from 0 to 65535 "
                  "(got '0x10')"});
}

TEST_CASE("a count must be a non-negative 32-bit integer", "[conf]") {
    CHECK(errors("receiver:\n  threads: two\n") ==
          strings{"cluster.yaml:2:12: error: receiver.threads: expected an integer from 0 to "
                  "4294967295 (got 'two')"});
    CHECK(errors("receiver:\n  auto_bind: 4294967296\n") ==
          strings{"cluster.yaml:2:14: error: receiver.auto_bind: expected an integer from 0 to "
                  "4294967295 (got '4294967296')"});
}

TEST_CASE("a size of the wrong form is reported at the value", "[conf]") {
    CHECK(errors("channel:\n  max_message: 16 megs\n") ==
          strings{"cluster.yaml:2:16: error: channel.max_message: expected a size like 64MiB, "
                  "512KiB or 1000 (got '16 megs')"});
    CHECK(errors("sender:\n  queue_limit: 64KB\n") ==
          strings{"cluster.yaml:2:16: error: sender.queue_limit: unknown unit 'KB', expected B, "
                  "KiB, MiB, GiB, kB, MB or GB (got '64KB')"});
}

TEST_CASE("a boolean is true or false, not the YAML 1.1 yes and no", "[conf]") {
    CHECK(errors("admin:\n  enabled: yes\n") ==
          strings{"cluster.yaml:2:12: error: admin.enabled: expected true or false (got 'yes')"});
    CHECK(troupe::conf::load_string("admin:\n  enabled: false\n").admin.enabled == false);
    CHECK(troupe::conf::load_string("admin:\n  enabled: True\n").admin.enabled == true);
}

TEST_CASE("a string key refuses a map or a list", "[conf]") {
    CHECK(errors("cluster:\n  name: {a: 1}\n") ==
          strings{"cluster.yaml:2:9: error: cluster.name: expected a string (got a map)"});
    CHECK(errors("logging:\n  file: [a, b]\n") ==
          strings{"cluster.yaml:2:9: error: logging.file: expected a string (got a list)"});
}

TEST_CASE("sender.on_queue_full lists its valid values", "[conf]") {
    CHECK(errors("sender:\n  on_queue_full: drop\n") ==
          strings{"cluster.yaml:2:18: error: sender.on_queue_full: expected one of block, fail "
                  "(got 'drop')"});
    CHECK(troupe::conf::load_string("sender:\n  on_queue_full: fail\n").sender.on_queue_full ==
          troupe::conf::queue_full_policy::fail);
}

TEST_CASE("channel.send_options is refused: the managers read manager.send_options", "[conf]") {
    // It was documented as the managers' default but nothing read it: a file
    // that set it replicated with manager.send_options' default, silently.
    CHECK(errors("channel:\n  send_options: sync\n") ==
          strings{"cluster.yaml:2:3: error: channel.send_options: unknown key 'send_options' (moved to "
                  "manager.send_options)"});
}

TEST_CASE("membership.static must be a list of host:port strings", "[conf]") {
    CHECK(errors("membership:\n  static: 127.0.0.1:4001\n") ==
          strings{"cluster.yaml:2:11: error: membership.static: expected a list of host:port "
                  "(got '127.0.0.1:4001')"});
    CHECK(errors("membership:\n  static:\n    - 127.0.0.1: 4001\n    - localhost\n") ==
          strings{"cluster.yaml:3:7: error: membership.static[0]: expected host:port (got a "
                  "map)",
                  "cluster.yaml:4:7: error: membership.static[1]: expected host:port (got "
                  "'localhost')"});
    const auto config = troupe::conf::load_string(
        "membership:\n  static: [127.0.0.1:4001, '[::1]:4002', node3:4003]\n");
    CHECK(
        config.membership.static_members ==
        std::vector<troupe::conf::host_port>{{"127.0.0.1", 4001}, {"::1", 4002}, {"node3", 4003}});
}

TEST_CASE("every mistake in a file is reported at once, in file order", "[conf]") {
    const std::string yaml = R"(cluster:
  name: my cluster
  node: web.1
  secret: short
recever:
  port: 4000
receiver:
  port: 70000
  threads: 0
membership:
  static:
    - 127.0.0.1:4001
    - 127.0.0.1:4001
    - localhost
  multicast:
    drop_time: 500
    frequncy: 1s
sender:
  ack_timout: 3s
  queue_limit: 1KiB
  on_queue_full: drop
channel:
  send_options: fast
admin:
  enabled: yes
logging:
  level: verbose
)";
    const strings expected{
        "cluster.yaml:2:3: error: cluster.name: may contain only letters, digits, '.', '_' and "
        "'-' (got 'my cluster')",
        "cluster.yaml:3:3: error: cluster.node: may contain only letters, digits, '_' and '-', "
        "no '.' since it ends session ids (got 'web.1')",
        "cluster.yaml:4:3: error: cluster.secret: must be at least 16 bytes when set (got 5)",
        "cluster.yaml:5:1: error: recever: unknown key 'recever' (did you mean 'receiver'?)",
        "cluster.yaml:8:9: error: receiver.port: expected an integer from 0 to 65535 (got "
        "'70000')",
        "cluster.yaml:9:3: error: receiver.threads: must be from 1 to 64 (got 0)",
        "cluster.yaml:13:7: error: membership.static[1]: 127.0.0.1:4001 is listed twice (first "
        "as membership.static[0])",
        "cluster.yaml:14:7: error: membership.static[2]: expected host:port (got 'localhost')",
        "cluster.yaml:16:16: error: membership.multicast.drop_time: missing unit: expected a "
        "duration like 500ms or 3s (got '500')",
        "cluster.yaml:17:5: error: membership.multicast.frequncy: unknown key 'frequncy' (did you "
        "mean 'frequency'?)",
        "cluster.yaml:19:3: error: sender.ack_timout: unknown key 'ack_timout' (did you mean "
        "'ack_timeout'?)",
        "cluster.yaml:20:3: error: sender.queue_limit: must be at least 64KiB (got 1KiB)",
        "cluster.yaml:21:18: error: sender.on_queue_full: expected one of block, fail (got "
        "'drop')",
        "cluster.yaml:23:3: error: channel.send_options: unknown key 'send_options' (moved to "
        "manager.send_options)",
        "cluster.yaml:25:12: error: admin.enabled: expected true or false (got 'yes')",
        "cluster.yaml:27:3: error: logging.level: expected one of trace, debug, info, warn, "
        "error, critical, off (got 'verbose')",
    };
    CHECK(errors(yaml) == expected);

    try {
        (void)troupe::conf::load_string(yaml, "cluster.yaml");
        FAIL("load_string accepted a broken file");
    } catch (const troupe::conf::config_error& e) {
        std::string joined;
        for (const auto& line : expected) {
            joined += (joined.empty() ? "" : "\n") + line;
        }
        CHECK(std::string(e.what()) == joined);
    }
}

TEST_CASE("a missing section or key keeps the documented default", "[conf]") {
    const auto config = troupe::conf::load_string("receiver:\n  port: 5000\n");
    const troupe::conf::cluster_config defaults;
    CHECK(config.receiver.port == 5000);
    CHECK(config.receiver.address == "127.0.0.1");
    CHECK(config.receiver.auto_bind == 100);
    CHECK(config.receiver.reader_threads == 64);
    CHECK(config.receiver.idle_timeout == 30s);
    CHECK(config.receiver.threads == 1);
    CHECK(config.cluster.name == "troupe");
    CHECK(config.membership.static_members.empty());
    CHECK(config.membership.multicast.enabled);
    CHECK(config.membership.multicast.address == "228.0.0.4");
    CHECK(config.membership.multicast.port == 45564);
    CHECK(config.membership.multicast.interface.empty());
    CHECK(config.membership.multicast.ttl == 1);
    CHECK(config.membership.multicast.frequency == 500ms);
    CHECK(config.membership.multicast.drop_time == 3s);
    CHECK(config.membership.failure_detector.ping_interval == 1s);
    CHECK(config.membership.failure_detector.verify_timeout == 1s);
    CHECK(config.membership.payload.empty());
    CHECK(config.sender.queue_limit == 4ULL << 20);
    CHECK(config.sender.on_queue_full == troupe::conf::queue_full_policy::block);
    CHECK(config.channel.max_message == 16ULL << 20);
    CHECK(config.channel.stop_timeout == 5s);
    CHECK(config.admin.enabled);
    CHECK(config.http.address == "127.0.0.1");
    CHECK(config.http.port == 8080);
    CHECK(config.http.threads == 2);
    CHECK(config.manager.type == "delta");
    CHECK(config.manager.context == "app");
    CHECK(config.manager.cookie == "TROUPE_SESSION");
    CHECK_FALSE(config.manager.cookie_secure);
    CHECK(config.manager.filter == R"(.*\.(gif|jpg|jpeg|png|ico|css|js|txt|html?)$|^/static/.*)");
    CHECK(config.manager.max_inactive == 30min);
    CHECK(config.manager.send_options == 8);
    CHECK(config.manager.on_replication_failure ==
          troupe::conf::replication_failure_policy::log);
    CHECK(config.manager.notify_listeners_on_replication);
    CHECK_FALSE(config.manager.expire_sessions_on_shutdown);
    CHECK(config.manager.state_transfer_timeout == 60s);
    CHECK(config.logging.level == "info");
    CHECK(config.logging.file.empty());
}

TEST_CASE("every key of the file reaches its field", "[conf]") {
    const auto c = troupe::conf::load_string(R"(cluster:
  name: c1
  node: n1
  secret: 0123456789abcdef
receiver:
  address: 10.0.0.5
  port: 4100
  auto_bind: 5
  threads: 4
  reader_threads: 0
  idle_timeout: 45s
membership:
  static: [10.0.0.5:4100, 10.0.0.6:4100]
  multicast:
    enabled: false
    address: 239.1.2.3
    port: 45600
    interface: 10.0.0.5
    ttl: 4
    frequency: 250ms
    drop_time: 10s
  failure_detector:
    ping_interval: 2s
    verify_timeout: 750ms
  payload:
    zone: eu-1a
    rack: r12
sender:
  connect_timeout: 2s
  ack_timeout: 4s
  queue_limit: 32MiB
  on_queue_full: fail
  block_timeout: 250ms
  reconnect_backoff_max: 30s
channel:
  max_message: 8MiB
  stop_timeout: 1m
admin:
  enabled: false
  address: 0.0.0.0
  port: 9000
http:
  address: 10.0.0.5
  port: 8081
  threads: 8
manager:
  type: standard
  context: shop
  cookie: JSESSIONID
  cookie_secure: true
  filter: '^/assets/.*'
  max_inactive: 1h
  send_options: sync
  on_replication_failure: fail
  notify_listeners_on_replication: false
  expire_sessions_on_shutdown: true
  state_transfer_timeout: 5s
logging:
  level: debug
  file: /tmp/troupe.log
)");
    CHECK(c.cluster.name == "c1");
    CHECK(c.cluster.node == "n1");
    CHECK(c.cluster.secret == "0123456789abcdef");
    CHECK(c.receiver.address == "10.0.0.5");
    CHECK(c.receiver.port == 4100);
    CHECK(c.receiver.auto_bind == 5);
    CHECK(c.receiver.threads == 4);
    CHECK(c.receiver.reader_threads == 0);
    CHECK(c.receiver.idle_timeout == 45s);
    CHECK(c.membership.static_members ==
          std::vector<troupe::conf::host_port>{{"10.0.0.5", 4100}, {"10.0.0.6", 4100}});
    CHECK_FALSE(c.membership.multicast.enabled);
    CHECK(c.membership.multicast.address == "239.1.2.3");
    CHECK(c.membership.multicast.port == 45600);
    CHECK(c.membership.multicast.interface == "10.0.0.5");
    CHECK(c.membership.multicast.ttl == 4);
    CHECK(c.membership.multicast.frequency == 250ms);
    CHECK(c.membership.multicast.drop_time == 10s);
    CHECK(c.membership.failure_detector.ping_interval == 2s);
    CHECK(c.membership.failure_detector.verify_timeout == 750ms);
    CHECK(c.membership.payload == pairs{{"zone", "eu-1a"}, {"rack", "r12"}});
    CHECK(c.sender.connect_timeout == 2s);
    CHECK(c.sender.ack_timeout == 4s);
    CHECK(c.sender.queue_limit == 32ULL << 20);
    CHECK(c.sender.on_queue_full == troupe::conf::queue_full_policy::fail);
    CHECK(c.sender.block_timeout == 250ms);
    CHECK(c.sender.reconnect_backoff_max == 30s);
    CHECK(c.channel.max_message == 8ULL << 20);
    CHECK(c.channel.stop_timeout == 1min);
    CHECK_FALSE(c.admin.enabled);
    CHECK(c.admin.address == "0.0.0.0");
    CHECK(c.admin.port == 9000);
    CHECK(c.http.address == "10.0.0.5");
    CHECK(c.http.port == 8081);
    CHECK(c.http.threads == 8);
    CHECK(c.manager.type == "standard");
    CHECK(c.manager.context == "shop");
    CHECK(c.manager.cookie == "JSESSIONID");
    CHECK(c.manager.cookie_secure);
    CHECK(c.manager.filter == "^/assets/.*");
    CHECK(c.manager.max_inactive == 1h);
    CHECK(c.manager.send_options == 6);
    CHECK(c.manager.on_replication_failure == troupe::conf::replication_failure_policy::fail);
    CHECK_FALSE(c.manager.notify_listeners_on_replication);
    CHECK(c.manager.expire_sessions_on_shutdown);
    CHECK(c.manager.state_transfer_timeout == 5s);
    CHECK(c.logging.level == "debug");
    CHECK(c.logging.file == "/tmp/troupe.log");
}

TEST_CASE("an unset cluster.node defaults to the short host name", "[conf]") {
    CHECK(troupe::conf::load_string("").cluster.node == short_host_name());
    CHECK(troupe::conf::load_string("cluster:\n  node: ''\n").cluster.node == short_host_name());
    CHECK(troupe::conf::load_string("cluster:\n  node: web7\n").cluster.node == "web7");
}

TEST_CASE("every example cluster file loads without diagnostics", "[conf]") {
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(TROUPE_CONF_EXAMPLES)) {
        if (entry.path().extension() == ".yaml") {
            files.push_back(entry.path());
        }
    }
    std::sort(files.begin(), files.end());
    REQUIRE(files.size() >= 3);
    for (const auto& file : files) {
        INFO(file.string());
        CHECK(file_errors(file.string()).empty());
    }
}

TEST_CASE("the three-node example describes node1 of 127.0.0.1:4001-4003", "[conf]") {
    const auto c =
        troupe::conf::load_file(std::string(TROUPE_CONF_EXAMPLES) + "/three-nodes-static.yaml");
    CHECK(c.cluster.node == "node1");
    CHECK(c.receiver.address == "127.0.0.1");
    CHECK(c.receiver.port == 4001);
    CHECK(c.membership.static_members == std::vector<troupe::conf::host_port>{{"127.0.0.1", 4001},
                                                                              {"127.0.0.1", 4002},
                                                                              {"127.0.0.1", 4003}});
    // The file's own instructions start node2 with two overrides.
    const auto node2 =
        troupe::conf::load_file(std::string(TROUPE_CONF_EXAMPLES) + "/three-nodes-static.yaml",
                                {"cluster.node=node2", "receiver.port=4002"});
    CHECK(node2.cluster.node == "node2");
    CHECK(node2.receiver.port == 4002);
}

TEST_CASE("the production example names its interface and a secret", "[conf]") {
    const auto c = troupe::conf::load_file(std::string(TROUPE_CONF_EXAMPLES) + "/production.yaml");
    CHECK(c.receiver.address == "10.0.0.5");
    CHECK(c.membership.multicast.interface == "10.0.0.5");
    CHECK(c.membership.multicast.ttl == 1);
    CHECK(c.cluster.secret.size() >= 16);
}

TEST_CASE("membership.multicast and membership.failure_detector are maps in membership", "[conf]") {
    const auto c = troupe::conf::load_string(R"(membership:
  multicast:
    address: 239.255.0.1
    ttl: 0
  failure_detector:
    verify_timeout: 2s
)");
    CHECK(c.membership.multicast.address == "239.255.0.1");
    CHECK(c.membership.multicast.ttl == 0);
    CHECK(c.membership.multicast.enabled); // the keys not written keep their defaults
    CHECK(c.membership.multicast.port == 45564);
    CHECK(c.membership.failure_detector.verify_timeout == 2s);
    CHECK(c.membership.failure_detector.ping_interval == 1s);
    // An empty inner map keeps every default, as an empty section does.
    CHECK(errors("membership:\n  multicast:\n  failure_detector: {}\n").empty());
}

TEST_CASE("an unknown key in an inner map gets the nearest name of that map", "[conf]") {
    CHECK(errors("membership:\n  multicast:\n    frequncy: 1s\n") ==
          strings{"cluster.yaml:3:5: error: membership.multicast.frequncy: unknown key "
                  "'frequncy' (did you mean 'frequency'?)"});
    CHECK(errors("membership:\n  failure_detector:\n    verify_timout: 1s\n") ==
          strings{"cluster.yaml:3:5: error: membership.failure_detector.verify_timout: unknown "
                  "key 'verify_timout' (did you mean 'verify_timeout'?)"});
    CHECK(errors("membership:\n  multicst:\n    ttl: 1\n") ==
          strings{"cluster.yaml:2:3: error: membership.multicst: unknown key 'multicst' (did you "
                  "mean 'multicast'?)"});
    CHECK(errors("membership:\n  failure:\n    ping_interval: 1s\n") ==
          strings{"cluster.yaml:2:3: error: membership.failure: unknown key 'failure' (did you "
                  "mean 'failure_detector'?)"});
}

TEST_CASE("a key or map of membership written elsewhere is pointed to its home", "[conf]") {
    CHECK(errors("membership:\n  frequency: 1s\n") ==
          strings{"cluster.yaml:2:3: error: membership.frequency: unknown key 'frequency' (did "
                  "you mean 'membership.multicast.frequency'?)"});
    CHECK(errors("membership:\n  multicast:\n    ping_interval: 1s\n") ==
          strings{"cluster.yaml:3:5: error: membership.multicast.ping_interval: unknown key "
                  "'ping_interval' (did you mean 'membership.failure_detector.ping_interval'?)"});
    CHECK(errors("multicast:\n  port: 45564\n") ==
          strings{"cluster.yaml:1:1: error: multicast: unknown key 'multicast' (did you mean "
                  "'membership.multicast'?)"});
    CHECK(errors("payload: {zone: a}\n") ==
          strings{"cluster.yaml:1:1: error: payload: unknown key 'payload' (did you mean "
                  "'membership.payload'?)"});
    // `enabled` and `address` live in several maps: no guess.
    CHECK(errors("membership:\n  enabled: false\n") ==
          strings{"cluster.yaml:2:3: error: membership.enabled: unknown key 'enabled'"});
}

TEST_CASE("the removed keys say where their setting went", "[conf]") {
    CHECK(errors("membership:\n  drop_time: 3s\n") ==
          strings{"cluster.yaml:2:3: error: membership.drop_time: unknown key 'drop_time' (moved "
                  "to membership.multicast.drop_time)"});
    CHECK(errors("sender:\n  keepalive: 1s\n") ==
          strings{"cluster.yaml:2:3: error: sender.keepalive: unknown key 'keepalive' (moved to "
                  "membership.failure_detector.ping_interval)"});
}

TEST_CASE("an inner map that is not a map is reported at its value", "[conf]") {
    // drop_time is unreadable too: the default frequency is not compared with it.
    CHECK(errors("membership:\n  multicast: 5\n  failure_detector: [1s]\n") ==
          strings{"cluster.yaml:2:14: error: membership.multicast: expected a map (got '5')",
                  "cluster.yaml:3:21: error: membership.failure_detector: expected a map (got a "
                  "list)"});
    CHECK(errors("membership:\n  multicast:\n    ttl: 1\n    ttl: 2\n") ==
          strings{"cluster.yaml:4:5: error: membership.multicast.ttl: duplicate key 'ttl' (first "
                  "at line 3)"});
}

TEST_CASE("membership.multicast values are read by type", "[conf]") {
    CHECK(errors(R"(membership:
  multicast:
    enabled: no
    port: 70000
    ttl: -1
    frequency: 500
    interface: [eth0]
)") == strings{
           "cluster.yaml:3:14: error: membership.multicast.enabled: expected true or false "
           "(got 'no')",
           "cluster.yaml:4:11: error: membership.multicast.port: expected an integer from 0 "
           "to 65535 (got '70000')",
           "cluster.yaml:5:10: error: membership.multicast.ttl: expected an integer from 0 to "
           "4294967295 (got '-1')",
           "cluster.yaml:6:16: error: membership.multicast.frequency: missing unit: expected "
           "a duration like 500ms or 3s (got '500')",
           "cluster.yaml:7:16: error: membership.multicast.interface: expected a string (got "
           "a list)",
       });
    CHECK_FALSE(troupe::conf::load_string("membership:\n  multicast:\n    enabled: false\n")
                    .membership.multicast.enabled);
}

TEST_CASE("membership.payload keeps its entries in file order", "[conf]") {
    const auto c = troupe::conf::load_string(R"(membership:
  payload:
    zone: eu-1a
    rack: 12
    weight: 0.5
    empty:
    'null': ~
    app.version: "2.1"
)");
    CHECK(c.membership.payload == pairs{{"zone", "eu-1a"},
                                        {"rack", "12"},
                                        {"weight", "0.5"},
                                        {"empty", ""},
                                        {"null", ""},
                                        {"app.version", "2.1"}});
    CHECK(troupe::conf::load_string("membership:\n  payload: {}\n").membership.payload.empty());
    CHECK(troupe::conf::load_string("membership:\n  payload:\n").membership.payload.empty());
}

TEST_CASE("membership.payload must be a map of strings", "[conf]") {
    CHECK(errors("membership:\n  payload: [zone, a]\n") ==
          strings{"cluster.yaml:2:12: error: membership.payload: expected a map of strings, like "
                  "{zone: a} (got a list)"});
    CHECK(errors("membership:\n  payload: zone=a\n") ==
          strings{"cluster.yaml:2:12: error: membership.payload: expected a map of strings, like "
                  "{zone: a} (got 'zone=a')"});
    CHECK(errors("membership:\n  payload:\n    zone: [a, b]\n    rack: {r: 1}\n") ==
          strings{"cluster.yaml:3:11: error: membership.payload.zone: expected a string (got a "
                  "list)",
                  "cluster.yaml:4:11: error: membership.payload.rack: expected a string (got a "
                  "map)"});
    CHECK(errors("membership:\n  payload:\n    zone: a\n    zone: b\n") ==
          strings{"cluster.yaml:4:5: error: membership.payload.zone: duplicate key 'zone' (first "
                  "at line 3)"});
    CHECK(errors("membership:\n  payload:\n    [a]: b\n") ==
          strings{"cluster.yaml:3:5: error: membership.payload: expected a key name (got a "
                  "list)"});
}

TEST_CASE("the rules on the whole payload skip a payload with unreadable entries", "[conf]") {
    // 17 entries, one unreadable: the count would judge a map the file did not
    // manage to write, so only the type error shows.
    std::string yaml = "membership:\n  payload:\n    bad: [x]\n";
    for (int i = 0; i < 16; ++i) {
        yaml += "    k" + std::to_string(i) + ": v\n";
    }
    CHECK(errors(yaml) == strings{"cluster.yaml:3:10: error: membership.payload.bad: expected a "
                                  "string (got a list)"});
}

TEST_CASE("manager.on_replication_failure lists its valid values", "[conf]") {
    CHECK(errors("manager:\n  on_replication_failure: retry\n") ==
          strings{"cluster.yaml:2:27: error: manager.on_replication_failure: expected one of log, "
                  "fail (got 'retry')"});
    CHECK(troupe::conf::load_string("manager:\n  on_replication_failure: fail\n")
              .manager.on_replication_failure == troupe::conf::replication_failure_policy::fail);
}

TEST_CASE("manager.send_options takes the names async, ack, sync and their numbers", "[conf]") {
    CHECK(errors("manager:\n  send_options: fast\n") ==
          strings{"cluster.yaml:2:17: error: manager.send_options: expected async, ack, sync or "
                  "8, 2, 6 (got 'fast')"});
    CHECK(troupe::conf::load_string("manager:\n  send_options: ack\n").manager.send_options == 2);
    CHECK(troupe::conf::load_string("manager:\n  send_options: 6\n").manager.send_options == 6);
}

TEST_CASE("http and manager keys are read by type", "[conf]") {
    CHECK(errors("http:\n  port: 70000\n  threads: -1\n") ==
          strings{"cluster.yaml:2:9: error: http.port: expected an integer from 0 to 65535 (got "
                  "'70000')",
                  "cluster.yaml:3:12: error: http.threads: expected an integer from 0 to "
                  "4294967295 (got '-1')"});
    CHECK(errors("manager:\n  cookie_secure: yes\n  max_inactive: 30\n") ==
          strings{"cluster.yaml:2:18: error: manager.cookie_secure: expected true or false (got "
                  "'yes')",
                  "cluster.yaml:3:17: error: manager.max_inactive: missing unit: expected a "
                  "duration like 500ms or 3s (got '30')"});
    CHECK(errors("manager: [delta]\n") ==
          strings{"cluster.yaml:1:10: error: manager: expected a map (got a list)"});
}

TEST_CASE("an unknown http or manager key gets the nearest name", "[conf]") {
    CHECK(errors("manager:\n  max_inactive_interval: 30m\n  cookie_name: SID\n") ==
          strings{"cluster.yaml:2:3: error: manager.max_inactive_interval: unknown key "
                  "'max_inactive_interval' (did you mean 'max_inactive'?)",
                  "cluster.yaml:3:3: error: manager.cookie_name: unknown key 'cookie_name' (did "
                  "you mean 'cookie'?)"});
    // A key cut short names the key it begins.
    CHECK(errors("manager:\n  cookie_sec: true\n") ==
          strings{"cluster.yaml:2:3: error: manager.cookie_sec: unknown key 'cookie_sec' (did you mean "
                  "'cookie_secure'?)"});
    CHECK(errors("http:\n  thread: 4\n") ==
          strings{"cluster.yaml:2:3: error: http.thread: unknown key 'thread' (did you mean "
                  "'threads'?)"});
    CHECK(errors("managers:\n  type: delta\n") ==
          strings{"cluster.yaml:1:1: error: managers: unknown key 'managers' (did you mean "
                  "'manager'?)"});
    // A manager key written at the top level is pointed to its home.
    CHECK(errors("cookie_secure: true\n") ==
          strings{"cluster.yaml:1:1: error: cookie_secure: unknown key 'cookie_secure' (did you "
                  "mean 'manager.cookie_secure'?)"});
}

TEST_CASE("manager.skip_headers is a list of header names, skip_paths a regex, route_rewrite a flag", "[conf]") {
    const auto config = troupe::conf::load_string(
        "manager:\n  skip_headers: [X-Health-Check, X-Bot]\n  skip_paths: '^/health.*'\n  route_rewrite: false\n");
    CHECK(config.manager.skip_headers == std::vector<std::string>{"X-Health-Check", "X-Bot"});
    CHECK(config.manager.skip_paths == "^/health.*");
    CHECK_FALSE(config.manager.route_rewrite);
    CHECK(troupe::conf::load_string("").manager.route_rewrite); // on by default
    CHECK(errors("manager:\n  skip_headers: X-Health-Check\n") ==
          strings{"cluster.yaml:2:17: error: manager.skip_headers: expected a list of strings, like "
                  "[X-Health-Check] (got 'X-Health-Check')"});
    CHECK(errors("manager:\n  skip_headers:\n    - X-Ok\n    - {a: b}\n    - 'bad name'\n") ==
          strings{"cluster.yaml:4:7: error: manager.skip_headers[1]: expected a string (got a map)",
                  "cluster.yaml:5:7: error: manager.skip_headers[2]: must be a header field name: visible "
                  "ASCII without spaces or ()<>@,;:\\\"/[]?={} (got 'bad name')"});
    CHECK(errors("manager:\n  skip_paths: '('\n").size() == 1);
}

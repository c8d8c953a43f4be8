// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/managers/attribute_codec.hpp>
#include <troupe/managers/session.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace troupe::managers {

namespace detail {

/// What a session_handle asks of its request scope; the managers implement it.
/// Writes go through here so that listeners fire and the change is marked for
/// the request's delta.
class handle_backend {
public:
    virtual void set_attribute(std::string_view name, attribute value) = 0;
    virtual void remove_attribute(std::string_view name) = 0;
    /// Runs `fn` on the current value (nullptr when absent) under the session's
    /// lock and stores what it returns.
    virtual void update_attribute(std::string_view name,
                                  const std::function<attribute(const attribute*)>& fn) = 0;
    virtual void set_max_inactive(std::chrono::seconds interval) = 0;
    virtual void invalidate() = 0;

protected:
    ~handle_backend() = default;
};

} // namespace detail

class request_scope;

/// What a request handler holds: typed access to its session. Every write is
/// applied at once (other requests on the session see it) and marked, so that
/// request_scope::end() replicates it in one delta. Obtained from
/// request_scope::session(); valid until the scope ends.
///
/// On an invalidated session, writes do nothing and reads see what was there.
///
/// @par Thread safety
/// One handle per request, used by the request's thread; several requests
/// (on any threads) may hold handles on one session at once: every call
/// locks the session, and modify() runs its function under that lock.
class session_handle {
public:
    /// Only a request scope makes handles (it holds the key).
    class key {
        friend class request_scope;
        key() = default;
    };
    session_handle(key, std::shared_ptr<session> s, detail::handle_backend* backend)
        : s_(std::move(s))
        , backend_(backend) {}
    session_handle(const session_handle&) = delete;
    session_handle& operator=(const session_handle&) = delete;

    /// The session's id (changes with request_scope::rotate_id() or a route rewrite).
    std::string id() const { return s_->id(); }
    /// When the session was created (manager_config::now's clock).
    wall_clock::time_point created() const { return s_->created(); }
    /// When a request last used it, on whichever member.
    wall_clock::time_point last_accessed() const { return s_->last_accessed(); }
    /// Idle time before it expires; zero or negative: never.
    std::chrono::seconds max_inactive() const { return s_->max_inactive(); }
    /// Advances by one with every replicated change.
    std::uint64_t version() const { return s_->version(); }
    /// False once invalidated or expired.
    bool valid() const { return s_->valid(); }

    /// Strings (anything convertible to std::string_view), integers and raw bytes
    /// (std::vector<std::uint8_t>) take fast paths; any other type that
    /// Boost.Serialization can save goes through a binary archive.
    /// @throws attribute_error (errc::encode_failed) when the archive cannot
    /// save the value (nothing is stored).
    template <typename T>
    void set(std::string_view name, const T& value) {
        backend_->set_attribute(name, encode_value(name, value));
    }

    /// nullopt when absent.
    /// @throws attribute_error when the stored bytes do not decode as T (that
    /// attribute only: the session stays usable).
    template <typename T>
    std::optional<T> get(std::string_view name) const {
        auto a = s_->get(name);
        if (!a) {
            return std::nullopt;
        }
        return decode_attribute<T>(name, *a);
    }

    /// Changes a stored object in place and marks it changed, so an in-place
    /// mutation is never lost for want of a set(). `fn(T&)` gets the current
    /// value (default-constructed when absent). It runs under the session's lock,
    /// so concurrent modify() calls on one session do not lose each other's
    /// changes (a counter counts every increment); it must not touch the session.
    /// @throws attribute_error when the stored value does not decode as T
    /// (nothing changes); whatever `fn` throws (nothing changes).
    template <typename T, typename Fn>
    void modify(std::string_view name, Fn&& fn) {
        backend_->update_attribute(name, [&](const attribute* current) {
            T value = current != nullptr ? decode_attribute<T>(name, *current) : T{};
            fn(value);
            return encode_value(name, value);
        });
    }

    /// Removes an attribute (no-op when absent); replicated with the request.
    void remove(std::string_view name) { backend_->remove_attribute(name); }
    /// Whether the attribute is set.
    bool contains(std::string_view name) const { return s_->contains(name); }
    /// The names of the attributes set, sorted.
    std::vector<std::string> attribute_names() const { return s_->attribute_names(); }
    /// Zero or negative: never expires.
    void set_max_inactive(std::chrono::seconds interval) { backend_->set_max_inactive(interval); }
    /// Ends the session now, here and (when the request ends) on every member.
    void invalidate() { backend_->invalidate(); }
    /// The read-only session (for pages that list every attribute, tools, tests).
    const std::shared_ptr<session>& underlying() const { return s_; }

private:
    template <typename T>
    static attribute encode_value(std::string_view name, const T& value) {
        if constexpr (detail::is_text_v<T> || detail::is_bytes_v<T> || detail::is_integer_v<T>) {
            return encode_attribute(value); // no archive: nothing to catch (nor to link)
        } else {
            try {
                return encode_attribute(value);
            } catch (const boost::archive::archive_exception& e) {
                throw attribute_error(std::string(name), std::string("does not encode: ") + e.what(),
                                      errc::encode_failed);
            }
        }
    }

    std::shared_ptr<session> s_;
    detail::handle_backend* backend_;
};

} // namespace troupe::managers

// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <troupe/managers/session.hpp>

#include "session_access.hpp"

#include <array>
#include <functional>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace troupe::managers::detail {

/// Sessions by id, in shards each behind its own std::shared_mutex (keyed by a
/// hash of the id), so that requests on different sessions rarely meet. Keys
/// are views of the sessions' own id strings: a rename re-keys under both
/// shards' locks. No lock is held once a call returns; callers never do I/O
/// under one.
///
/// @par Thread safety
/// Every member function may be called from any thread.
class session_store {
public:
    static constexpr std::size_t shard_count = 64;

    std::shared_ptr<session> find(std::string_view id) const {
        const auto& sh = shard_for(id);
        std::shared_lock lock(sh.mutex);
        auto it = sh.map.find(id);
        return it == sh.map.end() ? nullptr : it->second;
    }

    /// @return false if a session with that id is already there.
    bool insert(const std::shared_ptr<session>& s) {
        const auto key = session_access::key(*s);
        auto& sh = shard_for(key);
        std::unique_lock lock(sh.mutex);
        return sh.map.emplace(key, s).second;
    }

    /// Removes `s` if it is still the session stored under `id`.
    bool erase_if_same(std::string_view id, const session* s) {
        auto& sh = shard_for(id);
        std::unique_lock lock(sh.mutex);
        auto it = sh.map.find(id);
        if (it == sh.map.end() || it->second.get() != s) {
            return false;
        }
        sh.map.erase(it);
        return true;
    }

    std::shared_ptr<session> erase(std::string_view id) {
        auto& sh = shard_for(id);
        std::unique_lock lock(sh.mutex);
        auto it = sh.map.find(id);
        if (it == sh.map.end()) {
            return nullptr;
        }
        auto s = std::move(it->second);
        sh.map.erase(it);
        return s;
    }

    /// Gives `s` (stored under `old_id`) the id `new_id`. `local`: a rotation made
    /// here, which replicas must hear about (else one applied from a replica).
    /// @return false if `s` is not stored under old_id or new_id is taken.
    bool rename(const std::shared_ptr<session>& s, std::string_view old_id, std::string new_id,
                bool local = true) {
        const auto a = index(old_id);
        const auto b = index(new_id);
        // Both shards, in index order, so that two renames cannot deadlock.
        std::unique_lock first(shards_[std::min(a, b)].mutex);
        std::unique_lock<std::shared_mutex> second;
        if (a != b) {
            second = std::unique_lock(shards_[std::max(a, b)].mutex);
        }
        auto& from = shards_[a].map;
        auto& to = shards_[b].map;
        auto it = from.find(old_id);
        if (it == from.end() || it->second != s || to.count(new_id) > 0) {
            return false;
        }
        from.erase(it);
        if (local) {
            std::lock_guard slock(session_access::mutex(*s));
            session_access::note_rename_locked(*s);
        }
        session_access::set_id(*s, std::move(new_id));
        to.emplace(session_access::key(*s), s);
        return true;
    }

    std::size_t size() const {
        std::size_t n = 0;
        for (const auto& sh : shards_) {
            std::shared_lock lock(sh.mutex);
            n += sh.map.size();
        }
        return n;
    }

    /// Calls fn(session&) for every session of one shard at a time, under that
    /// shard's shared lock (fn may lock the session, nothing else).
    template <typename Fn>
    void for_each_locked(Fn&& fn) const {
        for (const auto& sh : shards_) {
            std::shared_lock lock(sh.mutex);
            for (const auto& [key, s] : sh.map) {
                fn(s);
            }
        }
    }

    /// The sessions of shard `i` (0 <= i < shard_count), copied out.
    std::vector<std::shared_ptr<session>> shard_snapshot(std::size_t i) const {
        const auto& sh = shards_[i];
        std::shared_lock lock(sh.mutex);
        std::vector<std::shared_ptr<session>> out;
        out.reserve(sh.map.size());
        for (const auto& [key, s] : sh.map) {
            out.push_back(s);
        }
        return out;
    }

private:
    struct shard {
        mutable std::shared_mutex mutex;
        std::unordered_map<std::string_view, std::shared_ptr<session>> map;
    };

    static std::size_t index(std::string_view id) noexcept {
        // The map hashes the same key: mix before taking a shard, so that a
        // shard's keys still spread over its buckets.
        auto h = std::hash<std::string_view>{}(id);
        h ^= h >> 29;
        h *= 0xbf58476d1ce4e5b9ULL;
        h ^= h >> 32;
        return h % shard_count;
    }
    shard& shard_for(std::string_view id) noexcept { return shards_[index(id)]; }
    const shard& shard_for(std::string_view id) const noexcept { return shards_[index(id)]; }

    std::array<shard, shard_count> shards_;
};

} // namespace troupe::managers::detail

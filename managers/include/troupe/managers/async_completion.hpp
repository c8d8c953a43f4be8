// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <tuple>
#include <utility>

namespace troupe::managers::detail {

/// Where an asynchronous troupe call meets its completion token. The call
/// starts its work at once (eagerly, whatever the token); the token's handler
/// arrives when the token starts waiting (later, for a lazy token such as
/// use_awaitable). Whichever comes second delivers the result.
template <typename... Args>
class completion_slot {
public:
    void complete(Args... args) {
        std::function<void(std::tuple<Args...>)> waiter;
        {
            std::lock_guard lock(mutex_);
            if (!waiter_) {
                result_.emplace(std::move(args)...);
                return;
            }
            waiter = std::move(waiter_);
        }
        waiter(std::tuple<Args...>(std::move(args)...));
    }

    /// The result, if it is here already (then nobody else gets it).
    std::optional<std::tuple<Args...>> take() {
        std::lock_guard lock(mutex_);
        auto ready = std::move(result_);
        result_.reset();
        return ready;
    }

    void on_complete(std::function<void(std::tuple<Args...>)> waiter) {
        std::optional<std::tuple<Args...>> ready;
        {
            std::lock_guard lock(mutex_);
            if (!result_) {
                waiter_ = std::move(waiter);
                return;
            }
            ready = std::move(result_);
        }
        waiter(std::move(*ready));
    }

private:
    std::mutex mutex_;
    std::optional<std::tuple<Args...>> result_;
    std::function<void(std::tuple<Args...>)> waiter_;
};

/// Calls `f(args...)` with `slot`'s result once it is there: now, or on
/// whichever thread completes it (the plain-callback forms).
template <typename... Args, typename F>
void call_when_done(const std::shared_ptr<completion_slot<Args...>>& slot, F f) {
    slot->on_complete([f = std::move(f)](std::tuple<Args...> result) mutable { std::apply(f, std::move(result)); });
}

/// Hands `slot`'s result to `token`'s handler in Asio's way: posted to the
/// handler's associated executor (never run inside the initiating call, nor
/// on a troupe thread unless that is the executor), which counts as having
/// work until then; the handler is moved out and destroyed there.
template <typename Signature, typename... Args, typename CompletionToken>
auto complete_from(std::shared_ptr<completion_slot<Args...>> slot, CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, Signature>(
        [slot = std::move(slot)](auto handler) {
            using handler_type = decltype(handler);
            if (auto ready = slot->take()) {
                // The usual case: the call's work finished inside it. The
                // posted operation keeps the executor busy by itself.
                auto executor = boost::asio::get_associated_executor(handler);
                boost::asio::post(executor, [h = std::move(handler), result = std::move(*ready)]() mutable {
                    std::apply(std::move(h), std::move(result));
                });
                return;
            }
            auto work = boost::asio::make_work_guard(handler);
            // std::function copies; handlers may only move.
            auto shared = std::make_shared<handler_type>(std::move(handler));
            slot->on_complete([shared, work](std::tuple<Args...> result) mutable {
                auto executor = work.get_executor();
                boost::asio::post(executor, [shared = std::move(shared), result = std::move(result)]() mutable {
                    handler_type h = std::move(*shared);
                    shared.reset();
                    std::apply(std::move(h), std::move(result));
                });
                // Released here, after post() returned, not in the handler:
                // the context cannot run out of work (and its owner destroy
                // it) while this thread is still inside post().
                work.reset();
            });
        },
        token);
}

} // namespace troupe::managers::detail

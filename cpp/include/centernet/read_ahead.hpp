// Reader threads that prepare inputs ahead of their consumer, handed out in input order,
// with at most `window` inputs prepared but not yet taken (bounded memory).
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace centernet {

template <typename T>
class ReadAhead {
public:
    using Prepare = std::function<T(std::size_t index)>;

    ReadAhead(std::size_t count, int readers, std::size_t window, Prepare prepare)
        : count_(count), window_(window ? window : 1), prepare_(std::move(prepare)) {
        for (int i = 0; i < std::max(1, readers); ++i) threads_.emplace_back([this] { work(); });
    }

    ~ReadAhead() {
        stop();
        for (auto& thread : threads_) thread.join();
    }

    // The next input in order (blocks until it is prepared); nothing after the last or
    // once stopped.
    std::optional<T> next() {
        std::unique_lock<std::mutex> lock(mutex_);
        if (taken_ >= count_) return std::nullopt;
        changed_.wait(lock, [&] { return stopped_ || ready_.count(taken_); });
        if (stopped_) return std::nullopt;
        auto found = ready_.find(taken_);
        T item = std::move(found->second);
        ready_.erase(found);
        ++taken_;
        changed_.notify_all();  // a reader may start the next one in the window
        return item;
    }

    void stop() {
        std::lock_guard<std::mutex> lock(mutex_);
        stopped_ = true;
        changed_.notify_all();
    }

private:
    void work() {
        while (true) {
            std::size_t index;
            {
                std::unique_lock<std::mutex> lock(mutex_);
                changed_.wait(lock, [&] {
                    return stopped_ || claimed_ >= count_ || claimed_ < taken_ + window_;
                });
                if (stopped_ || claimed_ >= count_) return;
                index = claimed_++;
            }
            T item = prepare_(index);  // must not throw: failures belong in the item
            std::lock_guard<std::mutex> lock(mutex_);
            ready_.emplace(index, std::move(item));
            changed_.notify_all();
        }
    }

    const std::size_t count_, window_;
    Prepare prepare_;
    std::mutex mutex_;
    std::condition_variable changed_;
    std::map<std::size_t, T> ready_;
    std::size_t claimed_ = 0, taken_ = 0;
    bool stopped_ = false;
    std::vector<std::thread> threads_;
};

}  // namespace centernet

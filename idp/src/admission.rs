//! Admission under a surge. A password check (Argon2id: tens of milliseconds and 19 MiB)
//! runs no more at once than there are cores; logins beyond those wait their turn, up to a
//! queue as long as [`Settings::login_queue`](crate::Settings::login_queue). Past it a login
//! is refused at once — 503 with `Retry-After` and "try again in a minute" — instead of
//! waiting seconds behind thousands of others: the logins admitted keep their latency, and
//! the server keeps its throughput rather than collapsing under a queue it cannot serve.
//! A refusal counts against nobody (it is decided before the login-attempt limits).

use std::sync::atomic::{AtomicUsize, Ordering};

/// Password checks running and waiting, bounded.
#[derive(Debug)]
pub struct Gate {
    permits: tokio::sync::Semaphore,
    /// Checks running or waiting.
    inside: AtomicUsize,
    /// How many may be inside at once: running plus waiting.
    capacity: usize,
}

/// Someone inside the gate, running a check until dropped.
pub struct Admitted<'a> {
    _permit: tokio::sync::SemaphorePermit<'a>,
    _inside: Inside<'a>,
}

/// A place inside the gate, given back however the wait or the check ends (a request
/// dropped while waiting included).
struct Inside<'a>(&'a AtomicUsize);

impl Drop for Inside<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Gate {
    /// `running` checks at once, and up to `queue` more waiting.
    pub fn new(running: usize, queue: usize) -> Self {
        Gate { permits: tokio::sync::Semaphore::new(running), inside: AtomicUsize::new(0), capacity: running + queue }
    }

    /// Enters, waiting for a running slot; `None` when the queue is full (refuse the login).
    pub async fn enter(&self) -> Option<Admitted<'_>> {
        let inside = Inside(&self.inside);
        if self.inside.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            return None;
        }
        Some(Admitted { _permit: self.permits.acquire().await.ok()?, _inside: inside })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn past_the_queue_a_login_is_refused_at_once_and_the_places_free_up() {
        let gate = Gate::new(1, 2);
        let running = gate.enter().await.expect("a free slot");
        // Two wait (their futures are polled once, so they are inside), the fourth is refused.
        let mut first = Box::pin(gate.enter());
        let mut second = Box::pin(gate.enter());
        assert!(futures_poll(&mut first).is_none() && futures_poll(&mut second).is_none(), "waiting for the running check");
        assert!(gate.enter().await.is_none(), "the queue is full");
        // A waiter that gives up frees its place.
        drop(second);
        let mut third = Box::pin(gate.enter());
        assert!(futures_poll(&mut third).is_none());
        drop(running);
        let admitted = first.await.expect("its turn");
        drop(admitted);
        third.await.expect("its turn");
        assert_eq!(gate.inside.load(Ordering::Acquire), 0, "everyone has left");
    }

    /// Polls a future once: `None` while pending.
    fn futures_poll<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
        let waker = std::task::Waker::noop();
        match std::pin::Pin::new(f).poll(&mut std::task::Context::from_waker(waker)) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        }
    }
}

//! A signal that stops the task driving a session at once: the driver future is dropped,
//! and with it the socket, without waiting for responses the server may never send.

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

/// Raced against a session's driver ([`crate::runtime::drive`]); once stopped, the driver
/// is dropped at its next poll, whatever it was waiting for.
///
/// One waiter at a time (the task it stops): it keeps a single waker. The waiter polls it
/// on every wake-up of its task, so that poll costs one atomic load once the task's waker
/// is registered (a lock only when the waker changes).
#[derive(Debug, Default)]
pub(crate) struct StopSignal {
    stopped: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl StopSignal {
    /// Stops the driver (idempotent).
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        let waker = self
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Ready once [`stop`](Self::stop) was called; otherwise registers the task's waker,
    /// unless `registered` (the waiter's copy of what it registered last) already wakes
    /// the same task.
    ///
    /// No stop is missed: `stop` stores the flag, then takes the waker under the lock; a
    /// waiter stores its waker under the lock, then reads the flag again. Either `stop`
    /// finds the waker, or the waiter sees the flag. A waker `stop` took is never needed
    /// again: the flag stays set.
    #[inline]
    pub(crate) fn poll_stopped(
        &self,
        cx: &mut Context<'_>,
        registered: &mut Option<Waker>,
    ) -> Poll<()> {
        if self.stopped.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        if registered
            .as_ref()
            .is_some_and(|waker| waker.will_wake(cx.waker()))
        {
            return Poll::Pending;
        }
        let waker = cx.waker().clone();
        *self.waker.lock().unwrap_or_else(PoisonError::into_inner) = Some(waker.clone());
        *registered = Some(waker);
        if self.stopped.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        Poll::Pending
    }

    /// Resolves once [`stop`](Self::stop) was called (one waiter at a time).
    pub(crate) async fn stopped(&self) {
        let mut registered = None;
        poll_fn(|cx| self.poll_stopped(cx, &mut registered)).await;
    }
}

/// Stops a session's driver when dropped. Declared after the session's `Client` in a
/// struct, so the client goes first: a session with nothing in flight then ends cleanly
/// (`Terminate`) at the driver's next poll, which runs before the stop is looked at; one
/// still waiting for the server is cut off.
#[derive(Debug)]
pub(crate) struct StopOnDrop(pub(crate) Arc<StopSignal>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;
    use std::sync::atomic::AtomicUsize;
    use std::task::{Context, Poll, Wake, Waker};

    use super::*;

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_stop_wakes_the_registered_task_once() {
        let signal = StopSignal::default();
        let count = Arc::new(Count::default());
        let waker = Waker::from(Arc::clone(&count));
        let mut cx = Context::from_waker(&waker);
        let mut registered = None;
        assert!(signal.poll_stopped(&mut cx, &mut registered).is_pending());
        // Polled again by the same task: nothing registered anew, still pending.
        assert!(signal.poll_stopped(&mut cx, &mut registered).is_pending());
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        signal.stop();
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "the stop woke the task");
        signal.stop();
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "the waker was taken once"
        );
        assert!(signal.poll_stopped(&mut cx, &mut registered).is_ready());
        // A stop before any registration is seen at the first poll.
        let other = StopSignal::default();
        other.stop();
        assert!(other.poll_stopped(&mut cx, &mut None).is_ready());
    }

    #[test]
    fn a_new_waker_is_registered() {
        let signal = StopSignal::default();
        let first = Arc::new(Count::default());
        let second = Arc::new(Count::default());
        let mut registered = None;
        let waker = Waker::from(Arc::clone(&first));
        assert!(
            signal
                .poll_stopped(&mut Context::from_waker(&waker), &mut registered)
                .is_pending()
        );
        let waker = Waker::from(Arc::clone(&second));
        assert!(
            signal
                .poll_stopped(&mut Context::from_waker(&waker), &mut registered)
                .is_pending()
        );
        signal.stop();
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
        assert_eq!(
            second.0.load(Ordering::SeqCst),
            1,
            "the last waker is woken"
        );
    }

    #[test]
    fn stopped_resolves_after_stop_only() {
        let signal = Arc::new(StopSignal::default());
        let mut waiting = pin!(signal.stopped());
        let mut cx = Context::from_waker(Waker::noop());
        assert!(waiting.as_mut().poll(&mut cx).is_pending());
        drop(StopOnDrop(Arc::clone(&signal)));
        assert_eq!(waiting.as_mut().poll(&mut cx), Poll::Ready(()));
        // Already stopped: at once.
        assert_eq!(pin!(signal.stopped()).poll(&mut cx), Poll::Ready(()));
    }
}

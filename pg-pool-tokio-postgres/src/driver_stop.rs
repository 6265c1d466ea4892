//! A signal that stops the task driving a session at once: the driver future is dropped,
//! and with it the socket, without waiting for responses the server may never send.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use event_listener::Event;

/// Raced against a session's driver ([`crate::runtime::drive`]); once stopped, the driver
/// is dropped at its next poll, whatever it was waiting for.
#[derive(Debug, Default)]
pub(crate) struct StopSignal {
    stopped: AtomicBool,
    event: Event,
}

impl StopSignal {
    /// Stops the driver (idempotent).
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.event.notify(usize::MAX);
    }

    /// Resolves once [`stop`](Self::stop) was called.
    pub(crate) async fn stopped(&self) {
        loop {
            if self.stopped.load(Ordering::Acquire) {
                return;
            }
            let listener = self.event.listen();
            // Checked again: a stop between the first check and `listen` has notified no one.
            if self.stopped.load(Ordering::Acquire) {
                return;
            }
            listener.await;
        }
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
    use std::task::{Context, Poll, Waker};

    use super::*;

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

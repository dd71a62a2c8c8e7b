//! A circuit breaker in front of the Solana node (issue #20): after `failures` consecutive
//! node failures (connection refused, timeouts, 5xx — never a transaction the node
//! rejected) calls fail at once with [`ChainError::CircuitOpen`] for `open_for`, instead of
//! each waiting for its own timeout; then one trial call is let through (half-open) and its
//! outcome closes or re-opens the circuit. A probe ([`crate::SolanaChain::probe`]) keeps the
//! state current when no request happens to call.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::ChainError;

#[derive(Debug, Clone, Copy)]
pub struct BreakerConfig {
    /// Consecutive failures that open the circuit.
    pub failures: u32,
    /// How long it stays open before one trial call.
    pub open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures: 3,
            open_for: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One trial call is in flight.
    HalfOpen,
}

/// The breaker's state as a number for metrics: 0 closed, 1 open, 2 half-open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed = 0,
    Open = 1,
    HalfOpen = 2,
}

#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    state: Mutex<State>,
    opened: AtomicU64,
    /// A probe runs: only it makes the half-open trial, so no request ever waits on a
    /// node that may still be down.
    probed: AtomicBool,
}

impl Breaker {
    pub fn new(config: BreakerConfig) -> Breaker {
        Breaker {
            config,
            state: Mutex::new(State::Closed { failures: 0 }),
            opened: AtomicU64::new(0),
            probed: AtomicBool::new(false),
        }
    }

    /// Whether a request's call may go to the node now; `Err(CircuitOpen)` with the seconds
    /// to wait.
    pub fn admit(&self) -> Result<(), ChainError> {
        self.admit_as(false)
    }

    /// [`Self::admit`] for the probe, which from now on makes every half-open trial.
    pub fn admit_probe(&self) -> Result<(), ChainError> {
        self.probed.store(true, Ordering::Relaxed);
        self.admit_as(true)
    }

    fn admit_as(&self, probe: bool) -> Result<(), ChainError> {
        let mut s = self.lock();
        match *s {
            State::Closed { .. } => Ok(()),
            State::Open { until } => {
                let now = Instant::now();
                if now >= until && (probe || !self.probed.load(Ordering::Relaxed)) {
                    *s = State::HalfOpen;
                    Ok(())
                } else {
                    Err(ChainError::CircuitOpen {
                        retry_after_secs: until.saturating_duration_since(now).as_secs().max(1),
                    })
                }
            }
            State::HalfOpen => Err(ChainError::CircuitOpen {
                retry_after_secs: 1,
            }),
        }
    }

    /// Records a call's outcome: `healthy` is false only for a node failure.
    pub fn record(&self, healthy: bool) {
        let mut s = self.lock();
        *s = match (*s, healthy) {
            (_, true) => State::Closed { failures: 0 },
            (State::Closed { failures }, false) if failures + 1 < self.config.failures => {
                State::Closed {
                    failures: failures + 1,
                }
            }
            (State::Open { until }, false) => State::Open { until },
            (_, false) => {
                self.opened.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    open_for_ms = self.config.open_for.as_millis() as u64,
                    "Solana node failing: circuit open, chain-dependent calls answer at once"
                );
                State::Open {
                    until: Instant::now() + self.config.open_for,
                }
            }
        };
    }

    pub fn state(&self) -> BreakerState {
        match *self.lock() {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen => BreakerState::HalfOpen,
        }
    }

    /// How many times the circuit opened since start.
    pub fn opened_total(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state half-written.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_err(r: Result<(), ChainError>) -> bool {
        matches!(r, Err(ChainError::CircuitOpen { .. }))
    }

    #[test]
    fn opens_after_consecutive_failures_then_lets_one_trial_through() {
        let b = Breaker::new(BreakerConfig {
            failures: 3,
            open_for: Duration::from_millis(50),
        });
        b.record(false);
        b.record(true);
        b.record(false);
        b.record(false);
        assert!(b.admit().is_ok(), "a success in between resets the count");
        b.record(false);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(open_err(b.admit()));
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.admit().is_ok(), "one trial after open_for");
        assert!(open_err(b.admit()), "only one trial at a time");
        b.record(false);
        assert!(open_err(b.admit()), "a failed trial re-opens");
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.admit().is_ok());
        b.record(true);
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.admit().is_ok());
        assert_eq!(b.opened_total(), 2);
    }

    #[test]
    fn with_a_probe_requests_never_make_the_trial() {
        let b = Breaker::new(BreakerConfig {
            failures: 1,
            open_for: Duration::from_millis(20),
        });
        assert!(b.admit_probe().is_ok());
        b.record(false);
        std::thread::sleep(Duration::from_millis(30));
        assert!(open_err(b.admit()), "requests keep getting the fast answer");
        assert!(b.admit_probe().is_ok(), "the probe tries");
        b.record(true);
        assert!(b.admit().is_ok());
    }
}

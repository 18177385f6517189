//! Restarts: whether a container that exited runs again, and how long to wait first.
//!
//! `restartPolicy` is a pod field: `Always` restarts every exit, `OnFailure` only a non-zero
//! exit code, `Never` none. A container that keeps crashing is not restarted in a tight loop:
//! the kubelet restarts it at once the first time, then waits 10 s, 20 s, 40 s ... up to 5 min
//! between crashes (the pod shows `CrashLoopBackOff` while it waits). A container that ran for
//! 10 minutes (twice the longest wait) before crashing is forgiven: the next restart is immediate.

use std::time::Duration;

/// The kubelet's first back-off delay (`backOffPeriod`).
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(10);
/// The kubelet's longest back-off delay (`MaxContainerBackOff`).
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// A run this long forgives earlier crashes: twice [`MAX_BACKOFF`], as in client-go's back-off.
pub const RESET_AFTER: Duration = Duration::from_secs(600);

/// Whether a container that exited with `exit_code` is started again under `policy`.
///
/// `policy` is the pod's `restartPolicy`: `Always`, `OnFailure` or `Never`. An empty or unknown
/// value counts as `Always`, the API server's default (manifest validation rejects unknown ones).
/// A container killed by a signal has exit code 128 + signal (137 for SIGKILL): a failure.
pub fn should_restart(policy: &str, exit_code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

/// The `CrashLoopBackOff` delays of one container, across its restarts.
///
/// Call [`Backoff::next_delay`] each time the container exits and will be restarted; wait the
/// returned time, then start it. The sequence is 0 (the first restart is immediate), 10 s, 20 s,
/// 40 s, 80 s, 160 s, 300 s, 300 s ...; a run longer than the reset time starts it over at 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    reset_after: Duration,
    /// The delay the next crash will get; `None` before the first crash and after a reset.
    next: Option<Duration>,
    /// The delay last returned by `next_delay`.
    current: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

impl Backoff {
    /// The kubelet's back-off: 10 s doubling to 300 s, reset after a 10 minute run.
    pub fn new() -> Self {
        Backoff::with_limits(INITIAL_BACKOFF, MAX_BACKOFF, RESET_AFTER)
    }

    /// A back-off with other limits (tests and labs use seconds instead of minutes).
    pub fn with_limits(initial: Duration, max: Duration, reset_after: Duration) -> Self {
        Backoff { initial, max: max.max(initial), reset_after, next: None, current: Duration::ZERO }
    }

    /// The wait before restarting a container that just exited after running for `ran_for`.
    ///
    /// The kubelet compares the finish times of two crashes (more than twice the longest delay
    /// apart resets the back-off); here the run time of the container stands for it.
    pub fn next_delay(&mut self, ran_for: Duration) -> Duration {
        if ran_for > self.reset_after {
            self.next = None;
        }
        let delay = self.next.unwrap_or(Duration::ZERO);
        self.next = Some(match self.next {
            None => self.initial,
            Some(d) => d.saturating_mul(2).min(self.max),
        });
        self.current = delay;
        delay
    }

    /// The delay last returned by [`Backoff::next_delay`] (zero before the first crash), for
    /// messages like `back-off 40s restarting failed container`.
    pub fn current(&self) -> Duration {
        self.current
    }

    /// Forget every crash: the next restart is immediate again.
    pub fn reset(&mut self) {
        self.next = None;
        self.current = Duration::ZERO;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn restart_policy_table() {
        let cases = [
            ("Always", 0, true),
            ("Always", 1, true),
            ("Always", 137, true),
            ("OnFailure", 0, false),
            ("OnFailure", 1, true),
            ("OnFailure", 137, true),
            ("OnFailure", -1, true),
            ("Never", 0, false),
            ("Never", 1, false),
            ("Never", 137, false),
            ("", 0, true),
            ("", 2, true),
        ];
        for (policy, code, want) in cases {
            assert_eq!(should_restart(policy, code), want, "policy {policy:?}, exit code {code}");
        }
    }

    #[test]
    fn backoff_doubles_to_five_minutes() {
        let mut b = Backoff::new();
        assert_eq!(b.current(), Duration::ZERO);
        let delays: Vec<u64> = (0..9).map(|_| b.next_delay(secs(1)).as_secs()).collect();
        assert_eq!(delays, [0, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(b.current(), secs(300));
    }

    #[test]
    fn backoff_resets_after_a_long_run() {
        let mut b = Backoff::new();
        for _ in 0..4 {
            b.next_delay(secs(5));
        }
        assert_eq!(b.current(), secs(40));
        // Exactly the reset time is not longer than it: the back-off goes on.
        assert_eq!(b.next_delay(secs(600)), secs(80));
        // A run longer than 10 minutes: immediate restart, then 10 s again.
        assert_eq!(b.next_delay(secs(601)), Duration::ZERO);
        assert_eq!(b.current(), Duration::ZERO);
        assert_eq!(b.next_delay(secs(1)), secs(10));
        assert_eq!(b.next_delay(secs(1)), secs(20));
    }

    #[test]
    fn backoff_with_small_limits() {
        let mut b = Backoff::with_limits(Duration::from_millis(100), Duration::from_millis(350), secs(2));
        let delays: Vec<u128> = (0..6).map(|_| b.next_delay(Duration::ZERO).as_millis()).collect();
        assert_eq!(delays, [0, 100, 200, 350, 350, 350]);
        assert_eq!(b.next_delay(secs(3)), Duration::ZERO);
        b.next_delay(Duration::ZERO);
        b.reset();
        assert_eq!(b.next_delay(Duration::ZERO), Duration::ZERO);
    }
}

//! Progress of a long encode for people: percent, speed, elapsed time and
//! an ETA, as a line redrawn on a terminal or a log line now and then.

use std::time::{Duration, Instant};

use super::StitchProgress;

/// How often a progress line is logged when stderr is not a terminal.
pub const LOG_EVERY: Duration = Duration::from_secs(30);

/// Seconds left at the pace so far; `None` until there is a pace to go by
/// (1% done and 2 s spent).
pub fn eta_sec(percent: f64, elapsed_sec: f64) -> Option<f64> {
    (percent >= 1.0 && elapsed_sec >= 2.0 && percent < 100.0)
        .then(|| elapsed_sec * (100.0 - percent) / percent)
}

/// `1h02m03s`, `4m05s` or `12s`.
pub fn human_duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m{sec:02}s"),
        (h, m, sec) => format!("{h}h{m:02}m{sec:02}s"),
    }
}

/// One progress line: `S: 45.2%  12.3 fps  elapsed 1m02s  ETA 1m15s`.
pub fn line(what: &str, p: &StitchProgress) -> String {
    let eta = p
        .eta_sec
        .map(|e| format!("  ETA {}", human_duration(e)))
        .unwrap_or_default();
    format!(
        "{what}: {:5.1}%  {:6.1} fps  elapsed {}{eta}",
        p.percent,
        p.fps,
        human_duration(p.elapsed_sec)
    )
}

/// Lets a log line through at most once per period (and the first one).
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    last: Option<Instant>,
}

impl Throttle {
    /// A throttle of one line per `every`.
    pub fn new(every: Duration) -> Throttle {
        Throttle { every, last: None }
    }

    /// Whether a line may go out now; if so, the period restarts.
    pub fn ready(&mut self) -> bool {
        let due = self.last.is_none_or(|t| t.elapsed() >= self.every);
        if due {
            self.last = Some(Instant::now());
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_and_formatting() {
        assert_eq!(eta_sec(0.5, 10.0), None);
        assert_eq!(eta_sec(25.0, 1.0), None);
        assert_eq!(eta_sec(25.0, 60.0), Some(180.0));
        assert_eq!(eta_sec(100.0, 60.0), None);
        assert_eq!(human_duration(12.4), "12s");
        assert_eq!(human_duration(245.0), "4m05s");
        assert_eq!(human_duration(3723.0), "1h02m03s");
        let p = StitchProgress {
            percent: 25.0,
            fps: 9.0,
            elapsed_sec: 60.0,
            eta_sec: Some(180.0),
        };
        assert_eq!(
            line("S", &p),
            "S:  25.0%     9.0 fps  elapsed 1m00s  ETA 3m00s"
        );
        let mut t = Throttle::new(Duration::from_secs(3600));
        assert!(t.ready());
        assert!(!t.ready());
    }
}

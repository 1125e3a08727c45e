//! The progress of one upload: a bar when stderr is a terminal, else a log
//! line per tenth of the file.

use std::io::{self, IsTerminal};

/// Progress of one upload: a bar on a terminal, else a log line per 10%.
pub(super) struct Progress {
    bar: Option<indicatif::ProgressBar>,
    label: String,
    total: u64,
    next_tenth: u64,
    enabled: bool,
}

impl Progress {
    pub(super) fn new(label: &str, total: u64, enabled: bool) -> Progress {
        let bar = (enabled && io::stderr().is_terminal()).then(|| {
            let style = indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> ");
            indicatif::ProgressBar::new(total)
                .with_style(style)
                .with_message(label.to_string())
        });
        Progress {
            bar,
            label: label.to_string(),
            total,
            next_tenth: 1,
            enabled,
        }
    }

    pub(super) fn update(&mut self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            return;
        }
        if !self.enabled || self.total == 0 {
            return;
        }
        // One line per tenth, also when one read crosses several (a small
        // file, a large chunk): a log reader counts ten lines per upload.
        let tenth = self.tenth_of(done);
        while self.next_tenth <= tenth {
            log::info!(
                "{}: sent {}% ({done} of {} bytes)",
                self.label,
                self.next_tenth * 10,
                self.total
            );
            self.next_tenth += 1;
        }
    }

    /// Starts counting at `done` (a resume): the bytes the server already
    /// holds were not sent now, so their tenths get no lines.
    pub(super) fn skip_to(&mut self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        }
        if self.total > 0 {
            self.next_tenth = self.tenth_of(done) + 1;
        }
    }

    /// How many whole tenths of the file `done` bytes are (0 to 10).
    fn tenth_of(&self, done: u64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        (u128::from(done) * 10 / u128::from(self.total)).min(10) as u64
    }

    pub(super) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenths_are_whole_tenths_of_the_file() {
        let p = Progress::new("x", 1000, false);
        let tenths: Vec<u64> = [0, 99, 100, 999, 1000, 5000]
            .iter()
            .map(|&d| p.tenth_of(d))
            .collect();
        assert_eq!(tenths, [0, 0, 1, 9, 10, 10]);
        assert_eq!(Progress::new("x", 0, false).tenth_of(5), 0);
        let mut resumed = Progress::new("x", 1000, false);
        resumed.skip_to(730);
        assert_eq!(
            resumed.next_tenth, 8,
            "the tenths already on the server get no line"
        );
    }
}

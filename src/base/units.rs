//! Sizes for people: the suite's one convention.
//!
//! Decimal SI units, as the config's GB (10^9 bytes) and disk vendors use:
//! `999 B`, `1.5 kB`, `256.0 MB`, `20.0 GB`, one decimal above a kilobyte.
//! Every program prints sizes through [`human_bytes`], so rig-upload's
//! progress, rig-check's reports and rig-receive's pages agree with each
//! other and with the figures in the config.

/// A byte count in decimal units: `12 B`, `1.5 kB`, `20.0 GB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut unit = "";
    for u in UNITS {
        v /= 1000.0;
        unit = u;
        if v < 1000.0 {
            break;
        }
    }
    format!("{v:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_500), "1.5 kB");
        assert_eq!(human_bytes(256 << 20), "268.4 MB");
        assert_eq!(human_bytes(20_000_000_000), "20.0 GB");
        assert_eq!(human_bytes(3_000_000_000_000_000), "3.0 PB");
        assert_eq!(human_bytes(u64::MAX), "18446.7 PB");
    }
}

//! Free space promised to the uploads in flight.
//!
//! `storage.min_free_space_gb` is a floor under the sessions filesystem. One
//! upload checks it against the bytes it announces (`Content-Length`), but
//! three cameras uploading 20 GB each at once would all pass that check
//! against the same free space and then all hit the floor half-way, after
//! sending gigabytes for nothing. So each admitted upload *reserves* the
//! bytes it still has to write, and the next upload is admitted only when
//! the free space minus every reservation minus its own bytes stays above
//! the floor. A reservation shrinks as its upload writes (what is written
//! already shows in the free space) and is released when the upload ends,
//! on every path.
//!
//! An upload without `Content-Length` (chunked) reserves nothing; the checks
//! made while it streams still stop it at the floor.

use std::sync::{Mutex, PoisonError};

/// The bytes reserved by every upload in flight.
#[derive(Debug, Default)]
pub struct Reservations {
    reserved: Mutex<u64>,
}

/// Not enough room: the figures for the 507's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shortfall {
    /// Free bytes on the filesystem now.
    pub free: u64,
    /// Bytes other uploads in flight still have to write.
    pub reserved: u64,
}

/// One upload's share; dropping it gives the rest back.
#[derive(Debug)]
pub struct Reservation<'a> {
    pool: &'a Reservations,
    /// The body length the upload announced.
    announced: u64,
    /// What this reservation holds now.
    held: u64,
}

impl Reservations {
    /// Admits an upload of `incoming` more bytes when `free` minus every
    /// reservation minus `incoming` leaves at least `floor`, and reserves
    /// them. Check and reservation happen under one lock, so two uploads
    /// cannot both take the last room.
    pub fn admit(
        &self,
        free: u64,
        floor: u64,
        incoming: u64,
    ) -> Result<Reservation<'_>, Shortfall> {
        let mut reserved = self.lock();
        // Compared as "room >= incoming + floor", so a floor of 0 still
        // refuses a body larger than the free space.
        if free.saturating_sub(*reserved) < incoming.saturating_add(floor) {
            return Err(Shortfall {
                free,
                reserved: *reserved,
            });
        }
        *reserved += incoming;
        Ok(Reservation {
            pool: self,
            announced: incoming,
            held: incoming,
        })
    }

    /// Bytes reserved by all uploads in flight.
    #[cfg(test)]
    pub fn total(&self) -> u64 {
        *self.lock()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, u64> {
        self.reserved.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Reservation<'_> {
    /// Records that `received` bytes of the announced body have arrived (and
    /// are on disk, so in the free space figure), then checks the floor for
    /// the rest: the free space minus what every upload still has to write.
    pub fn progress(&mut self, received: u64, free: u64, floor: u64) -> Result<(), Shortfall> {
        let remaining = self.announced.saturating_sub(received);
        let mut reserved = self.pool.lock();
        if remaining < self.held {
            *reserved = reserved.saturating_sub(self.held - remaining);
            self.held = remaining;
        }
        if free.saturating_sub(*reserved) < floor {
            return Err(Shortfall {
                free,
                reserved: reserved.saturating_sub(self.held),
            });
        }
        Ok(())
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut reserved = self.pool.lock();
        *reserved = reserved.saturating_sub(self.held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GB: u64 = 1_000_000_000;

    #[test]
    fn three_cameras_cannot_all_take_the_same_room() {
        let pool = Reservations::default();
        // 100 GB free, floor 50: room for two 20 GB uploads, not three.
        let a = pool.admit(100 * GB, 50 * GB, 20 * GB).unwrap();
        let b = pool.admit(100 * GB, 50 * GB, 20 * GB).unwrap();
        let refused = pool.admit(100 * GB, 50 * GB, 20 * GB).unwrap_err();
        assert_eq!(
            refused,
            Shortfall {
                free: 100 * GB,
                reserved: 40 * GB
            }
        );
        assert_eq!(pool.total(), 40 * GB);
        drop(a);
        assert_eq!(
            pool.total(),
            20 * GB,
            "a finished upload gives its room back"
        );
        drop(b);
        assert_eq!(pool.total(), 0);
        assert!(pool.admit(100 * GB, 50 * GB, 20 * GB).is_ok());
    }

    #[test]
    fn progress_shrinks_the_reservation_as_bytes_land() {
        let pool = Reservations::default();
        let mut a = pool.admit(100 * GB, 50 * GB, 20 * GB).unwrap();
        let mut b = pool.admit(100 * GB, 50 * GB, 20 * GB).unwrap();
        // Both half-way: 20 GB written, so 80 GB free, 20 GB still to come.
        a.progress(10 * GB, 80 * GB, 50 * GB).unwrap();
        b.progress(10 * GB, 80 * GB, 50 * GB).unwrap();
        assert_eq!(pool.total(), 20 * GB);
        // Room for another 10 GB now (80 - 20 - 10 = 50), not for 11.
        assert!(pool.admit(80 * GB, 50 * GB, 11 * GB).is_err());
        let c = pool.admit(80 * GB, 50 * GB, 10 * GB).unwrap();
        assert_eq!(pool.total(), 30 * GB);
        drop(c);
        // Something else fills the disk: the next check stops the upload.
        let short = a.progress(12 * GB, 55 * GB, 50 * GB).unwrap_err();
        assert_eq!(short.free, 55 * GB);
        assert_eq!(short.reserved, 10 * GB, "b's 10 GB still to come");
        // A chunked upload (nothing announced) holds nothing.
        // A floor of 0 still refuses more than the free space.
        let empty = Reservations::default();
        assert!(empty.admit(5 * GB, 0, 6 * GB).is_err());
        assert!(empty.admit(5 * GB, 0, 4 * GB).is_ok());
        let mut chunked = pool.admit(55 * GB, 0, 0).unwrap();
        chunked.progress(GB, 54 * GB, 0).unwrap();
        drop((a, b, chunked));
        assert_eq!(pool.total(), 0);
    }
}

//! `SeenAddresses`: which addresses a file has already loaded, in bounded memory. It
//! keeps a 128-bit digest of each dedup key and the line it was first seen on, never
//! the address itself: 1M rows cost about 45 MB instead of the strings' hundreds.
//! The table is split in `SHARDS` so that growing it never holds two copies of the
//! whole table at once (a single table peaks at 1.5 times its size while it doubles).

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher, RandomState};

use crate::model::EmailAddress;

/// Two independent 64-bit SipHash values, stored as four `u32` so that an entry with
/// its line number packs into 20 bytes. A false "duplicate" needs a 128-bit
/// collision: about 2^64 addresses before one is likely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Digest([u32; 4]);

impl Hash for Digest {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Already uniformly distributed; hashing it again would only cost time.
        state.write_u64(u64::from(self.0[0]) << 32 | u64::from(self.0[1]));
    }
}

/// Passes the digest's own bits through as the table hash.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `Digest` is hashed with this; fold anything else in for correctness.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

const SHARDS: usize = 16;

type Shard = HashMap<Digest, u32, BuildHasherDefault<PassThrough>>;

pub(crate) struct SeenAddresses {
    /// Chosen by digest bits the table hash does not use, so shards fill evenly.
    shards: Vec<Shard>,
    /// Random keys per import, so no file can be crafted to collide on purpose.
    keys: (RandomState, RandomState),
    /// The lower-cased key, reused so a lookup allocates nothing.
    scratch: Vec<u8>,
}

impl SeenAddresses {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            keys: (RandomState::new(), RandomState::new()),
            scratch: Vec::with_capacity(256),
        }
    }

    /// The line on which `address` was first recorded, or `None` after recording it
    /// at `line` now. Lines past `u32::MAX` are remembered as `u32::MAX`.
    pub(crate) fn first_or_insert(&mut self, address: &EmailAddress, line: u64) -> Option<u64> {
        let digest = self.digest(address);
        let shard = digest.0[3] as usize % SHARDS;
        match self.shards[shard].entry(digest) {
            std::collections::hash_map::Entry::Occupied(first) => Some(u64::from(*first.get())),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(u32::try_from(line).unwrap_or(u32::MAX));
                None
            }
        }
    }

    /// Digests the same bytes as `EmailAddress::dedup_key`, without its allocation.
    fn digest(&mut self, address: &EmailAddress) -> Digest {
        self.scratch.clear();
        self.scratch
            .extend(address.as_str().bytes().map(|b| b.to_ascii_lowercase()));
        let a = self.keys.0.hash_one(self.scratch.as_slice());
        let b = self.keys.1.hash_one(self.scratch.as_slice());
        // Truncating casts split each u64 into its halves.
        Digest([(a >> 32) as u32, a as u32, (b >> 32) as u32, b as u32])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str) -> EmailAddress {
        EmailAddress::parse(text).expect("valid")
    }

    #[test]
    fn addresses_that_differ_only_in_case_are_the_same_recipient() {
        let mut seen = SeenAddresses::new();
        assert_eq!(seen.first_or_insert(&address("Ann@Example.com"), 2), None);
        assert_eq!(
            seen.first_or_insert(&address("ann@example.COM"), 5),
            Some(2)
        );
        assert_eq!(seen.first_or_insert(&address("bob@example.com"), 6), None);
        assert_eq!(
            seen.first_or_insert(&address("ANN@example.com"), 9),
            Some(2)
        );
    }

    #[test]
    fn the_digest_covers_exactly_the_dedup_key() {
        let mut seen = SeenAddresses::new();
        let a = address("Ann.Lee@Example.com");
        seen.digest(&a);
        assert_eq!(seen.scratch, a.dedup_key().into_bytes());
    }
}

//! A small seeded generator for the crate's unit tests (xorshift), so that a failing case
//! can be replayed from its seed.

/// The numbers that follow `seed` (which must not be zero).
pub(crate) fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}

//! Randomness from the operating system (`getrandom`), the only place keymix draws it.
//!
//! Every primitive also has a seeded, deterministic entry point (`*_from_seed`, `*_with_randomness`)
//! so that published test vectors and our own known-answer vectors can be reproduced exactly.

use crate::Error;

/// Fills an `N`-byte array from the operating system's CSPRNG.
pub(crate) fn os_random<const N: usize>() -> Result<[u8; N], Error> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| Error::Randomness(e.to_string()))?;
    Ok(bytes)
}

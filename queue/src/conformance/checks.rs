//! The checks of the conformance suite, one public async function each.

mod delivery;
mod publishing;

pub use delivery::*;
pub use publishing::*;

//! IR invariants; a failure here is a compiler bug, not a user error.

//! Stable text form of the IR, used by `symc inspect --ir` and snapshot tests.

//! Broadside load tests.

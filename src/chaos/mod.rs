//! Multi-process chaos runs against the real binaries, with a history checker.

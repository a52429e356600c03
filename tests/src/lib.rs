//! Shared helpers for the end-to-end tests (model paths, fixture paths).

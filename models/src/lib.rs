//! Model catalog and fetching (stub).

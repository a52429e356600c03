//! CPU twins of the KV quantizers (written next).

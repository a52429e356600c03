//! Model configuration from GGUF metadata.

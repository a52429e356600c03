//! Tokenizer built from GGUF metadata, and chat templates (owned by the tokenizer work; stub).

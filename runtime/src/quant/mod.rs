//! CPU dequantization of ggml block formats (owned by the dequantization work; stub).

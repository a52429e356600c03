//! The registry of every WGSL shader in `shaders/`, by name.
//!
//! Each shader is compiled into the library with `include_str!`, so the binary carries its
//! own kernels. `tests/shaders.rs` validates every entry with naga for SPIR-V, MSL and HLSL,
//! and fails when a `.wgsl` file in `shaders/` is missing from [`SHADERS`].

/// `shaders/add.wgsl`: elementwise f32 add (the residual connection).
pub const ADD: &str = include_str!("../../../shaders/add.wgsl");

/// Every shader, as (name, WGSL source); the name is the file stem in `shaders/`.
pub const SHADERS: &[(&str, &str)] = &[("add", ADD)];

/// The source of the shader called `name`, if it is registered.
pub fn source(name: &str) -> Option<&'static str> {
    SHADERS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

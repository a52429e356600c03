//! One module per subcommand.

pub mod info;
pub mod list;
pub mod pull;
pub mod tokenize;

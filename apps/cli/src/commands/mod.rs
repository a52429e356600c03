//! One module per subcommand.

pub mod bench;
pub mod info;
pub mod list;
pub mod pull;
pub mod run;
pub mod tokenize;

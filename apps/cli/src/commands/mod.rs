//! One module per subcommand.

pub mod bench;
pub mod chat;
pub mod info;
pub mod list;
pub mod perplexity;
pub mod pull;
pub mod run;
pub mod selfcheck;
pub mod serve;
pub mod tokenize;

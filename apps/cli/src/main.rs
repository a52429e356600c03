//! `voyager`: run, inspect and fetch language models on this machine.

mod args;
mod commands;
mod interrupt;
mod load;
mod model_arg;
mod output;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Voyager: on-device LLM inference.
#[derive(Parser)]
#[command(name = "voyager", version, about, long_about = None)]
struct Cli {
    /// More logging (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fetch catalog models into the models directory ($VOYAGER_MODELS).
    Pull(commands::pull::Args),
    /// List the catalog and what is installed.
    List(commands::list::Args),
    /// Describe a model: architecture, sizes, tensor types, tokenizer, KV bytes per token.
    Info(commands::info::Args),
    /// Print the token ids the model sees for a text.
    Tokenize(commands::tokenize::Args),
    /// Generate text from a prompt, streaming it to stdout.
    Run(commands::run::Args),
    /// Chat with the model in its own template.
    Chat(commands::chat::Args),
    /// Score a text: perplexity over windows of the context size.
    Perplexity(commands::perplexity::Args),
    /// Measure prefill and decode speed.
    Bench(commands::bench::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .format_timestamp(None)
        .init();

    let result = match cli.command {
        Command::Pull(args) => commands::pull::run(args),
        Command::List(args) => commands::list::run(args),
        Command::Info(args) => commands::info::run(args),
        Command::Tokenize(args) => commands::tokenize::run(args),
        Command::Run(args) => commands::run::run(args),
        Command::Chat(args) => commands::chat::run(args),
        Command::Perplexity(args) => commands::perplexity::run(args),
        Command::Bench(args) => commands::bench::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

/// Errors reach the user as one line, whatever the library's message looked like.
fn one_line(msg: &str) -> String {
    msg.split_whitespace().collect::<Vec<_>>().join(" ")
}

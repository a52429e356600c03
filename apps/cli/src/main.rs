//! `voyager`: run, inspect and fetch language models on this machine.

mod args;
mod commands;
mod interrupt;
mod load;
mod model_arg;
mod output;
mod progress;

use std::ffi::OsString;
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
    /// Describe a model: architecture, sizes, tensor types, tokenizer, KV bytes per token;
    /// with --mem-budget or cache flags, the memory plan a load would follow.
    Info(commands::info::Args),
    /// Print the token ids the model sees for a text.
    Tokenize(commands::tokenize::Args),
    /// Generate text from a prompt, streaming it to stdout.
    Run(commands::run::Args),
    /// Chat with the model in its own template.
    Chat(commands::chat::Args),
    /// Score a text: perplexity over windows of the context size, or as one stream.
    Perplexity(commands::perplexity::Args),
    /// Measure prefill and decode speed.
    Bench(commands::bench::Args),
    /// Check every GPU kernel against its CPU twin on this machine's GPU.
    Selfcheck(commands::selfcheck::Args),
    /// Serve the model over an OpenAI-compatible HTTP API (chat and text completions).
    Serve(commands::serve::Args),
}

fn main() -> ExitCode {
    quiet_mesa();
    let cli = match Cli::try_parse_from(llama_flags(std::env::args_os())) {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .format(|buf, record| {
            use std::io::Write;
            match record.level() {
                // Warnings are for the user: one plain line, like errors.
                log::Level::Warn => writeln!(buf, "warning: {}", record.args()),
                log::Level::Error => writeln!(buf, "error: {}", record.args()),
                level => writeln!(
                    buf,
                    "{} {}: {}",
                    level.as_str().to_lowercase(),
                    record.target(),
                    record.args()
                ),
            }
        })
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
        Command::Selfcheck(args) => commands::selfcheck::run(args),
        Command::Serve(args) => commands::serve::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

/// llama.cpp's multi-letter single-dash flags, as their users type them, and the long flags
/// they mean (clap's short flags are one letter: `-ctk` would read as `-c tk`).
const LLAMA_FLAGS: [(&str, &str); 2] = [("-ctk", "--cache-type-k"), ("-ctv", "--cache-type-v")];

/// Rewrites `-ctk X`, `-ctk=X` (and `-ctv`) to the long flags, up to a `--` that ends the
/// options.
fn llama_flags(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut options_ended = false;
    args.into_iter()
        .map(|arg| {
            if options_ended {
                return arg;
            }
            let Some(text) = arg.to_str() else {
                return arg;
            };
            if text == "--" {
                options_ended = true;
                return arg;
            }
            for (short, long) in LLAMA_FLAGS {
                if text == short {
                    return long.into();
                }
                if let Some(value) = text.strip_prefix(short).and_then(|v| v.strip_prefix('=')) {
                    return format!("{long}={value}").into();
                }
            }
            arg
        })
        .collect()
}

/// Reports a command-line error as one line (help and version print as usual).
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    // clap's message is its first paragraph; usage and tips follow a blank line.
    let rendered = e.render().to_string();
    let first = rendered.split("\n\n").next().unwrap_or_default();
    let msg = one_line(first);
    let msg = msg.strip_prefix("error:").unwrap_or(&msg).trim();
    eprintln!("error: {msg} (see --help)");
    ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
}

/// Mesa's Vulkan loader prints "XDG_RUNTIME_DIR is invalid or not set" on every run where it
/// is unset (containers, CI, ssh sessions); it is harmless, so give it a private default
/// before any thread or GPU instance exists.
fn quiet_mesa() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        let dir = std::env::temp_dir().join(format!("voyager-runtime-{}", whoami()));
        if std::fs::create_dir_all(&dir).is_ok() {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
            }
            // SAFETY-relevant: called first thing in main, before any other thread exists.
            std::env::set_var("XDG_RUNTIME_DIR", dir);
        }
    }
}

/// A per-user name for the runtime directory.
fn whoami() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "user".into())
}

/// Errors reach the user as one line, whatever the library's message looked like.
fn one_line(msg: &str) -> String {
    msg.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(args: &[&str]) -> Vec<String> {
        llama_flags(args.iter().map(OsString::from))
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn llama_cache_flags_become_long_flags() {
        assert_eq!(
            rewrite(&["voyager", "run", "-ctk", "q8", "-ctv=f16", "-c", "64", "hi"]),
            [
                "voyager",
                "run",
                "--cache-type-k",
                "q8",
                "--cache-type-v=f16",
                "-c",
                "64",
                "hi"
            ]
        );
        // Other flags, values and everything after `--` stay as they are.
        let keep = [
            "voyager", "run", "-ctkx", "--ctk", "-c", "-ctv", "--", "-ctk",
        ];
        assert_eq!(
            rewrite(&keep),
            [
                "voyager",
                "run",
                "-ctkx",
                "--ctk",
                "-c",
                "--cache-type-v",
                "--",
                "-ctk"
            ]
        );
    }

    #[test]
    fn llama_cache_flags_parse() {
        #[derive(Parser)]
        struct Flags {
            #[command(flatten)]
            model: args::ModelArgs,
        }
        let argv = ["voyager", "-m", "x", "-ctk", "q8", "-ctv=f16", "-c", "64"];
        let flags = Flags::try_parse_from(llama_flags(argv.map(OsString::from))).unwrap();
        let o = flags.model.engine_options().unwrap();
        use voyager_runtime::kv::KvType;
        assert_eq!((o.cache_type_k, o.cache_type_v), (KvType::Q8, KvType::F16));
        assert_eq!(o.window, Some(60));
        // Without the rewrite, clap reads `-ctk` as `-c tk`.
        assert!(Flags::try_parse_from(argv).is_err());
    }

    #[test]
    fn every_model_command_takes_the_memory_flags() {
        for cmd in [
            &["info"][..],
            &["run"],
            &["chat"],
            &["perplexity", "-f", "t.txt"],
            &["bench"],
        ] {
            let mut argv = vec!["voyager"];
            argv.extend_from_slice(cmd);
            argv.extend([
                "-m",
                "x",
                "--mem-budget",
                "300MiB",
                "-ctk",
                "q8",
                "--ctv",
                "q4",
                "--window",
                "100",
                "--sinks",
                "2",
                "--kv-recent",
                "0",
                "--no-kv-rotate",
            ]);
            if cmd[0] == "run" {
                argv.push("prompt");
            }
            let parsed = Cli::try_parse_from(llama_flags(argv.iter().map(OsString::from)));
            assert!(parsed.is_ok(), "{argv:?}: {}", parsed.err().unwrap());
        }
    }
}

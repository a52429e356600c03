//! `voyager chat -m MODEL [--system TEXT] [--session FILE]`: an interactive conversation, a
//! thin loop over the runtime's `Chat` (which renders the model's template and feeds only new
//! tokens). Ctrl-C stops the current answer; `/regen` answers the last message again; `/reset`
//! starts over; `/save FILE` saves the conversation; with `--session` it resumes from FILE and
//! is saved there after every turn.

use std::io::{BufRead, Write};

use anyhow::Result;
use voyager_runtime::engine::{Chat, GenerateOptions, Reply, StopReason};

use crate::args::{ModelArgs, SamplingArgs};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// A system message that opens the conversation.
    #[arg(long)]
    system: Option<String>,
    /// Most tokens per answer.
    #[arg(short = 'n', long = "n-predict", default_value_t = 1024)]
    n_predict: usize,
    /// Resume the conversation saved in FILE (messages and cache, at the cache's own
    /// precision) and save it there after every turn; a new conversation starts when FILE
    /// does not exist.
    #[arg(long, value_name = "FILE")]
    session: Option<std::path::PathBuf>,
}

const HELP: &str = "/regen answers the last message again, /reset starts over, /save FILE \
                    saves the conversation, /exit or Ctrl-D quits, Ctrl-C stops an answer";

pub fn run(args: Args) -> Result<()> {
    let options = GenerateOptions {
        sampling: args.sampling.params()?,
        max_tokens: args.n_predict,
        stop_at_eog: true,
        cancel: None,
        logprobs: false,
        ..Default::default()
    };
    let engine = crate::load::engine(&args.model, false)?;
    let mut chat = match &args.session {
        Some(path) if path.exists() => {
            let chat = Chat::restore(&engine, path)?;
            if args.system.is_some() {
                log::warn!("resuming a saved conversation: --system is ignored");
            }
            eprintln!(
                "resumed {} messages from {} ({} tokens in the cache)",
                chat.messages().len(),
                path.display(),
                chat.session().history().len()
            );
            chat
        }
        _ => Chat::new(&engine, args.system.as_deref())?,
    };
    // Ctrl-C cancels the answer in progress (the chat clears the token at each turn).
    chat.set_cancel_token(crate::interrupt::token());
    eprintln!("chatting with {} ({HELP})", args.model.model);
    let stdin = std::io::stdin();
    let mut line = String::new();
    loop {
        eprint!("> ");
        line.clear();
        if stdin.lock().read_line(&mut line)? == 0 {
            break;
        }
        let input = line.trim_end_matches(['\n', '\r']);
        let mut stdout = std::io::stdout().lock();
        let mut show = |piece: &str| {
            let _ = stdout.write_all(piece.as_bytes());
            let _ = stdout.flush();
            true
        };
        let reply = match input.trim() {
            "" => continue,
            "/exit" | "/quit" => break,
            "/help" => {
                eprintln!("{HELP}");
                continue;
            }
            "/reset" => {
                chat.reset();
                continue;
            }
            "/regen" => chat.regenerate(&options, &mut show),
            cmd if cmd.starts_with("/save") => {
                let file = cmd["/save".len()..].trim();
                match (file, &args.session) {
                    ("", None) => eprintln!("error: /save needs a file name"),
                    (f, session) => {
                        let path = if f.is_empty() {
                            session.clone().unwrap_or_default()
                        } else {
                            f.into()
                        };
                        match chat.save(&path) {
                            Ok(()) => eprintln!("saved to {}", path.display()),
                            Err(e) => eprintln!("error: {e}"),
                        }
                    }
                }
                continue;
            }
            _ => chat.send(input, &options, &mut show),
        };
        drop(stdout);
        match reply {
            Ok(reply) => {
                report(&reply, &chat)?;
                if let Some(path) = &args.session {
                    if let Err(e) = chat.save(path) {
                        eprintln!("error: {e}");
                    }
                }
            }
            // A bad turn (say, one the template refuses) leaves the conversation as it was.
            Err(e) => eprintln!("error: {e}"),
        }
    }
    Ok(())
}

fn report(reply: &Reply, chat: &Chat) -> Result<()> {
    crate::outln!("");
    if reply.stop == StopReason::Cancelled {
        eprintln!("(stopped)");
    }
    let s = &reply.stats;
    log::info!(
        "turn: {} prompt tokens ({} reused from the cache), {} generated, {:.1} tokens/s; \
         {} tokens in the window, {} slid out",
        s.prompt_tokens,
        s.reused_tokens,
        s.generated_tokens,
        s.decode_tokens_per_second,
        s.tokens_in_window,
        s.tokens_evicted
    );
    let usage = chat.context_usage();
    if usage.evicted > 0 && s.tokens_evicted > 0 && s.tokens_evicted == usage.evicted {
        log::info!(
            "the conversation is longer than the model's window of {} tokens: its oldest {} \
             tokens (after the first few) are no longer seen",
            usage.context_size,
            usage.evicted
        );
    }
    Ok(())
}

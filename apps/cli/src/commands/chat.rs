//! `voyager chat -m MODEL [--system TEXT]`: an interactive conversation in the model's own
//! chat template. Each turn evaluates only the new tokens; Ctrl-C stops the current answer.

use std::io::{BufRead, Write};

use anyhow::Result;
use voyager_runtime::engine::{GenerateOptions, Prompt, StopReason};
use voyager_runtime::tokenizer::ChatMessage;

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
}

pub fn run(args: Args) -> Result<()> {
    let cancel = crate::interrupt::flag();
    let options = GenerateOptions {
        sampling: args.sampling.params()?,
        max_tokens: args.n_predict,
        stop_at_eog: true,
        cancel: Some(cancel.clone()),
    };
    let engine = crate::load::engine(&args.model, false)?;
    let mut session = engine.session()?;
    let mut messages: Vec<ChatMessage> = args
        .system
        .iter()
        .map(|s| ChatMessage::new("system", s.as_str()))
        .collect();
    eprintln!(
        "chatting with {} (/reset starts over, /exit or Ctrl-D quits, Ctrl-C stops an answer)",
        args.model.model
    );
    let stdin = std::io::stdin();
    let mut line = String::new();
    loop {
        eprint!("> ");
        line.clear();
        if stdin.lock().read_line(&mut line)? == 0 {
            break;
        }
        let input = line.trim_end_matches(['\n', '\r']);
        match input.trim() {
            "" => continue,
            "/exit" | "/quit" => break,
            "/reset" => {
                messages.truncate(usize::from(args.system.is_some()));
                session.reset();
                continue;
            }
            _ => {}
        }
        messages.push(ChatMessage::new("user", input));
        crate::interrupt::clear();
        let mut stdout = std::io::stdout().lock();
        let gen = session.generate(Prompt::Chat(&messages), &options, &mut |piece| {
            let _ = stdout.write_all(piece.as_bytes());
            let _ = stdout.flush();
        });
        drop(stdout);
        let gen = match gen {
            Ok(gen) => gen,
            Err(e) => {
                // The conversation no longer fits, or the prompt is bad: say so, keep going.
                messages.pop();
                eprintln!("error: {e}");
                continue;
            }
        };
        crate::outln!("");
        if gen.stop == StopReason::Cancelled {
            eprintln!("(stopped)");
        }
        log::info!(
            "turn: {} prompt tokens, {} evaluated ({} reused from the cache), {} generated",
            gen.prompt_tokens.len(),
            gen.prefilled,
            gen.prompt_tokens.len() - gen.prefilled,
            gen.tokens.len()
        );
        messages.push(ChatMessage::new("assistant", gen.text.as_str()));
    }
    Ok(())
}

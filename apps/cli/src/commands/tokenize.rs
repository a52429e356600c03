//! `voyager tokenize -m MODEL TEXT`

use anyhow::Result;
use voyager_runtime::gguf::GgufFile;
use voyager_runtime::tokenizer::Tokenizer;

#[derive(clap::Args)]
pub struct Args {
    /// Model: a GGUF path or a catalog name.
    #[arg(short, long)]
    model: String,
    /// Print exactly one JSON array of ids.
    #[arg(long)]
    json: bool,
    /// The text, tokenized as a raw prompt (BOS added when the model adds one; special tokens
    /// written in the text are recognised).
    text: String,
}

pub fn run(args: Args) -> Result<()> {
    let path = crate::model_arg::resolve(&args.model)?;
    let file = GgufFile::open(&path)?;
    let tok = Tokenizer::from_metadata(file.metadata())?;
    let ids = tok.encode(&args.text, true)?;
    if args.json {
        crate::outln!("{}", serde_json::to_string(&ids)?);
    } else {
        for id in ids {
            let piece = tok.decode(&[id], false)?;
            crate::outln!("{id:>7} -> {piece:?}");
        }
    }
    Ok(())
}

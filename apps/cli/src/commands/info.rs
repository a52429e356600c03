//! `voyager info -m MODEL [--json]`

use std::collections::BTreeMap;

use anyhow::Result;
use serde_json::json;
use voyager_runtime::gguf::file_type_name;
use voyager_runtime::model::Model;
use voyager_runtime::tokenizer::chat::TemplateSource;

#[derive(clap::Args)]
pub struct Args {
    /// Model: a GGUF path or a catalog name.
    #[arg(short, long)]
    model: String,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let path = crate::model_arg::resolve(&args.model)?;
    let model = Model::open(&path)?;
    let info = describe(&model, &path);
    if args.json {
        crate::outln!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        print_text(&info)?;
    }
    Ok(())
}

fn describe(model: &Model, path: &std::path::Path) -> serde_json::Value {
    let (file, cfg, tok) = (&model.file, &model.config, &model.tokenizer);
    let md = file.metadata();
    let mut types: BTreeMap<String, usize> = BTreeMap::new();
    let mut unsupported: Vec<String> = Vec::new();
    for t in file.tensors() {
        *types.entry(t.ggml_type.to_string()).or_default() += 1;
        if !t.ggml_type.is_supported() && !unsupported.contains(&t.ggml_type.to_string()) {
            unsupported.push(t.ggml_type.to_string());
        }
    }
    let file_type = md
        .opt_u32("general.file_type")
        .ok()
        .flatten()
        .map(|ft| file_type_name(ft).map_or(format!("unknown ({ft})"), str::to_string));
    let template = match model.template.origin() {
        TemplateSource::Model => "model",
        TemplateSource::BuiltinGemma => "built-in (gemma)",
        TemplateSource::BuiltinChatMl => "built-in (chatml)",
    };
    json!({
        "path": path,
        "name": cfg.name,
        "architecture": cfg.arch.gguf_name(),
        "gguf_version": file.version(),
        "file_size": file.file_size(),
        "file_type": file_type,
        "parameters": file.n_parameters(),
        "tensor_count": file.tensors().len(),
        "tensor_types": types,
        "unsupported_tensor_types": unsupported,
        "context_length": cfg.context_length,
        "n_layers": cfg.n_layers,
        "n_embd": cfg.n_embd,
        "n_ff": cfg.n_ff,
        "n_heads": cfg.n_heads,
        "n_kv_heads": cfg.n_kv_heads,
        "head_dim": cfg.head_dim,
        "head_dim_v": cfg.head_dim_v,
        "vocab_size": cfg.vocab_size,
        "rms_eps": cfg.rms_eps,
        "rope": {
            "layout": cfg.rope_layout.to_string(),
            "dims": cfg.rope_dim,
            "freq_base": cfg.rope_freq_base,
            "freq_base_sliding": cfg.rope_freq_base_swa,
            "scale": cfg.rope_scale,
        },
        "sliding_window": cfg.sliding_window,
        "n_sliding_layers": cfg.layer_is_sliding.iter().filter(|s| **s).count(),
        "tied_embeddings": cfg.tied_embeddings,
        "tokenizer": {
            "kind": tok.kind().to_string(),
            "pre": md.opt_str("tokenizer.ggml.pre").ok().flatten(),
            "vocab_size": tok.vocab_size(),
            "bos": tok.bos(),
            "eos": tok.eos(),
            "add_bos": tok.add_bos(),
        },
        "chat_template": template,
        "kv_bytes_per_token_f16": cfg.kv_bytes_per_token(16),
    })
}

fn print_text(v: &serde_json::Value) -> std::io::Result<()> {
    let s = |k: &str| match &v[k] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".into(),
        other => other.to_string(),
    };
    let mib = |k: &str| v[k].as_u64().unwrap_or(0) as f64 / (1 << 20) as f64;
    let types: Vec<String> = v["tensor_types"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(t, n)| format!("{n} {t}"))
        .collect();
    let rope = &v["rope"];
    let tok = &v["tokenizer"];
    crate::outln!("model           {}", s("name"));
    crate::outln!("path            {}", s("path"));
    crate::outln!("architecture    {}", s("architecture"));
    crate::outln!(
        "file            {:.1} MiB, GGUF v{}, type {}",
        mib("file_size"),
        s("gguf_version"),
        s("file_type")
    );
    crate::outln!(
        "parameters      {:.1} M",
        v["parameters"].as_u64().unwrap_or(0) as f64 / 1e6
    );
    crate::outln!(
        "tensors         {} ({})",
        s("tensor_count"),
        types.join(", ")
    );
    if let Some(u) = v["unsupported_tensor_types"]
        .as_array()
        .filter(|u| !u.is_empty())
    {
        let u: Vec<_> = u.iter().filter_map(|x| x.as_str()).collect();
        crate::outln!("unsupported     {} (this model cannot run)", u.join(", "));
    }
    crate::outln!("context         {}", s("context_length"));
    crate::outln!(
        "layers          {} (embedding {}, feed-forward {})",
        s("n_layers"),
        s("n_embd"),
        s("n_ff")
    );
    crate::outln!(
        "heads           {} query, {} KV, head dim {}",
        s("n_heads"),
        s("n_kv_heads"),
        s("head_dim")
    );
    crate::outln!(
        "rope            {}, {} dims, base {}{}",
        rope["layout"].as_str().unwrap_or("-"),
        rope["dims"],
        rope["freq_base"],
        if rope["freq_base_sliding"] != rope["freq_base"] {
            format!(" (sliding layers {})", rope["freq_base_sliding"])
        } else {
            String::new()
        }
    );
    if !v["sliding_window"].is_null() {
        crate::outln!(
            "sliding window  {} tokens on {} of {} layers",
            s("sliding_window"),
            s("n_sliding_layers"),
            s("n_layers")
        );
    }
    crate::outln!(
        "tokenizer       {}, pre {}, vocab {}, BOS {}",
        tok["kind"].as_str().unwrap_or("-"),
        tok["pre"].as_str().unwrap_or("-"),
        tok["vocab_size"],
        if tok["add_bos"] == true {
            "added"
        } else {
            "not added"
        }
    );
    crate::outln!("chat template   {}", s("chat_template"));
    crate::outln!("KV bytes/token  {} at f16", s("kv_bytes_per_token_f16"));
    Ok(())
}

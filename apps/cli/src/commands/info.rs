//! `voyager info -m MODEL [--json] [--mem-budget SIZE] [-c N | --window W] [--sinks S]
//! [-ctk TYPE] [-ctv TYPE]`
//!
//! Describes the model from its GGUF header alone (no GPU). With any memory or cache flag it
//! also prints the memory plan a load with those flags would follow: weights, KV cache,
//! scratch and staging against the budget, or the one-line refusal loading would give.

use std::collections::BTreeMap;

use anyhow::Result;
use serde_json::json;
use voyager_runtime::arch::{layer_specs, rope_layout};
use voyager_runtime::budget::{self, format_size, Plan};
use voyager_runtime::engine::EngineOptions;
use voyager_runtime::gguf::file_type_name;
use voyager_runtime::kv::{self, HeadShape, KvType};
use voyager_runtime::model::Model;
use voyager_runtime::tokenizer::chat::TemplateSource;

use crate::args::ModelArgs;

#[derive(clap::Args)]
pub struct Args {
    /// The model, and the load flags to plan memory for (planned when any memory or cache
    /// flag is given).
    #[command(flatten)]
    model: ModelArgs,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let options = args.model.engine_options()?;
    let path = crate::model_arg::resolve(&args.model.model)?;
    let model = Model::open(&path)?;
    let mut info = describe(&model, &path);
    if args.model.has_memory_flags() {
        let plan = budget::plan(&model, &options)?;
        info["plan"] = describe_plan(&plan, &options);
    }
    if args.json {
        crate::outln!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        print_text(&info)?;
    }
    Ok(())
}

/// Ring bytes per token over all layers for each cache type, `None` when the model's heads
/// cannot be cached (widths not a multiple of the quantization block).
fn kv_bytes_per_token(model: &Model) -> Option<Vec<(KvType, u64)>> {
    let cfg = &model.config;
    let shape = HeadShape {
        n_kv_heads: u32::try_from(cfg.n_kv_heads).ok()?,
        head_dim: u32::try_from(cfg.head_dim).ok()?,
        head_dim_v: u32::try_from(cfg.head_dim_v).ok()?,
    };
    shape.check().ok()?;
    let shapes = vec![shape; cfg.n_layers];
    Some(kv::bytes_per_token_by_type(&shapes))
}

/// `{"f16": N, "q8": N, "q4": N, ...}` (the types the heads can be stored in).
fn per_type(bytes: &[(KvType, u64)]) -> serde_json::Value {
    bytes
        .iter()
        .map(|(t, n)| (t.name().to_string(), json!(n)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn describe_plan(plan: &Plan, options: &EngineOptions) -> serde_json::Value {
    let kv = &plan.kv_config;
    json!({
        "budget": plan.budget,
        "weights": plan.weights,
        "kv": plan.kv,
        "scratch": plan.scratch,
        "staging": plan.staging,
        "tokenizer": plan.tokenizer,
        "metadata": plan.metadata,
        "readback": plan.readback,
        "bindings": plan.bindings,
        "driver": plan.driver,
        "driver_source": plan.driver_source.to_string(),
        "slack": plan.slack,
        "device_buffers": plan.device_buffers(),
        "lines": plan.lines().iter().map(|(name, bytes, per_session)| json!({
            "name": name, "bytes": bytes, "per_session": per_session,
        })).collect::<Vec<_>>(),
        "sessions": plan.sessions,
        "shared": plan.shared(),
        "per_session": plan.per_session(),
        "total": plan.total(),
        "window": kv.window,
        "sinks": kv.sinks,
        "span": kv.span(),
        "cache_type_k": kv.k_type.name(),
        "cache_type_v": kv.v_type.name(),
        // Only a quantized cache keeps a recent copy in f16.
        "recent_f16": if kv.k_type.is_quantized() || kv.v_type.is_quantized() {
            kv.recent
        } else {
            0
        },
        "rotate": kv.rotates(),
        "center_keys": kv.center_keys && kv.k_type.is_quantized(),
        "kv_policy": kv.policy.name(),
        "batch": options.batch,
        "kv_bytes_per_token": per_type(&plan.kv_bytes_per_token),
        "kv_ring_bytes_per_token": plan.kv_ring_bytes_per_token,
        "kv_f16_bytes": plan.kv_f16_bytes,
    })
}

fn describe(model: &Model, path: &std::path::Path) -> serde_json::Value {
    let (file, cfg, tok) = (&model.file, &model.config, &model.tokenizer);
    let md = file.metadata();
    let mut types: BTreeMap<String, usize> = BTreeMap::new();
    for t in file.tensors() {
        *types.entry(t.ggml_type.to_string()).or_default() += 1;
    }
    let off_gpu = model.tensors_off_gpu();
    let unsupported: Vec<String> = off_gpu.iter().map(|(ty, _)| ty.to_string()).collect();
    let cannot_run: Vec<serde_json::Value> = off_gpu
        .iter()
        .map(|(ty, list)| {
            json!({
                "type": ty.to_string(),
                "count": list.len(),
                "tensors": list.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
            })
        })
        .collect();
    let layers = layer_specs(cfg);
    let sliding: Vec<_> = layers
        .iter()
        .filter(|l| l.sliding_window.is_some())
        .collect();
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
        "tensors_without_gpu_kernel": cannot_run,
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
            "layout": rope_layout(cfg.arch).to_string(),
            "dims": cfg.rope_dim,
            "freq_base": cfg.rope_freq_base,
            "freq_base_sliding": sliding.first().map_or(cfg.rope_freq_base, |l| l.rope_base),
            "scale": cfg.rope_scale,
        },
        "sliding_window": cfg.sliding_window,
        "n_sliding_layers": sliding.len(),
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
        "kv_bytes_per_token": kv_bytes_per_token(model).map(|b| per_type(&b)),
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
    for t in v["tensors_without_gpu_kernel"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let names: Vec<&str> = t["tensors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n.as_str())
            .collect();
        let shown = names.iter().take(3).copied().collect::<Vec<_>>().join(", ");
        let more = names.len().saturating_sub(3);
        crate::outln!(
            "cannot run      {} {} tensors have no GPU kernel ({shown}{}): this model cannot \
             run",
            t["count"],
            t["type"].as_str().unwrap_or("-"),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        );
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
    match &v["kv_bytes_per_token"] {
        serde_json::Value::Null => {
            crate::outln!("KV bytes/token  {} at f16", s("kv_bytes_per_token_f16"))
        }
        bytes => crate::outln!("KV bytes/token  {}", per_type_text(bytes)),
    }
    for line in plan_lines(&v["plan"]) {
        crate::outln!("{line}");
    }
    Ok(())
}

/// `512 at f16, 288 at q8, 160 at q4` from `{"f16": 512, ...}`.
fn per_type_text(bytes: &serde_json::Value) -> String {
    KvType::ALL
        .iter()
        .filter_map(|t| Some(format!("{} at {t}", bytes[t.name()].as_u64()?)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The memory plan in words (nothing when there is no plan).
fn plan_lines(plan: &serde_json::Value) -> Vec<String> {
    if plan.is_null() {
        return Vec::new();
    }
    let size = |k: &str| format_size(plan[k].as_u64().unwrap_or(0));
    let budget = plan["budget"].as_u64();
    let mut notes = Vec::new();
    if plan["rotate"].as_bool() == Some(true) {
        notes.push("rotated".to_string());
    }
    if plan["center_keys"].as_bool() == Some(true) {
        notes.push("keys centered".to_string());
    }
    if let Some(r) = plan["recent_f16"].as_u64().filter(|&r| r > 0) {
        notes.push(format!("newest {r} also in f16"));
    }
    if plan["kv_policy"].as_str() == Some("importance") {
        notes.push("importance policy: the newest half and the most attended".to_string());
    }
    let extras = if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join(", "))
    };
    let sessions = plan["sessions"].as_u64().unwrap_or(1);
    let per_session = if sessions > 1 {
        format!(" per session x {sessions}")
    } else {
        String::new()
    };
    vec![
        format!(
            "memory plan     {}",
            budget.map_or("no budget".to_string(), |b| format!(
                "budget {}",
                format_size(b)
            ))
        ),
        format!("  weights       {}", size("weights")),
        format!(
            "  driver        {} (GPU driver and compiled pipelines, {})",
            size("driver"),
            plan["driver_source"].as_str().unwrap_or("-")
        ),
        format!("  tokenizer     {}", size("tokenizer")),
        format!("  metadata      {} (and chat template)", size("metadata")),
        format!("  staging       {} (upload)", size("staging")),
        format!(
            "  slack         {} (driver allocation rounding, upload heap)",
            size("slack")
        ),
        format!(
            "  KV cache      {}{}: window {} + {} sinks = {} tokens, K {} V {}{extras}",
            size("kv"),
            per_session,
            plan["window"],
            plan["sinks"],
            plan["span"],
            plan["cache_type_k"].as_str().unwrap_or("-"),
            plan["cache_type_v"].as_str().unwrap_or("-"),
        ),
        format!(
            "  scratch       {}{} (batch {})",
            size("scratch"),
            per_session,
            plan["batch"]
        ),
        format!(
            "  readback      {}{} (logits on the CPU, sampler)",
            size("readback"),
            per_session
        ),
        format!(
            "  bindings      {}{} (the forward pass's bind groups, in the driver)",
            size("bindings"),
            per_session
        ),
        format!(
            "  total         {}{}",
            size("total"),
            budget.map_or(String::new(), |b| format!(" of {}", format_size(b)))
        ),
        format!(
            "  KV/token      {}",
            per_type_text(&plan["kv_bytes_per_token"])
        ),
        kv_split_line(plan),
    ]
}

/// The chosen cache's ring cost per token against f16, and the f16 part apart.
fn kv_split_line(plan: &serde_json::Value) -> String {
    let ring = plan["kv_ring_bytes_per_token"].as_u64().unwrap_or(0);
    let f16 = plan["kv_bytes_per_token"]["f16"].as_u64().unwrap_or(0);
    let ratio = if f16 > 0 {
        format!(
            " ({:.2} bits/value, {:.3}x f16)",
            16.0 * ring as f64 / f16 as f64,
            ring as f64 / f16 as f64
        )
    } else {
        String::new()
    };
    format!(
        "  KV ring       {ring} bytes/token{ratio}; sinks and newest copies in f16: {}",
        format_size(plan["kv_f16_bytes"].as_u64().unwrap_or(0))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use voyager_runtime::kv::KvConfig;

    fn plan(budget: Option<u64>, kv_config: KvConfig) -> Plan {
        Plan {
            budget,
            weights: 100 << 20,
            kv: 12 << 20,
            scratch: 3 << 20,
            staging: 1 << 20,
            tokenizer: 5 << 20,
            metadata: 1 << 20,
            readback: 2 << 20,
            bindings: 1 << 20,
            driver: 90 << 20,
            driver_source: voyager_runtime::budget::DriverMemory::Given,
            slack: 10 << 20,
            sessions: 1,
            kv_config,
            kv_bytes_per_token: vec![
                (KvType::F16, 23040),
                (KvType::Q8, 12960),
                (KvType::Q4, 7200),
                (KvType::Tq4, 6000),
                (KvType::Tq3, 4560),
            ],
            kv_ring_bytes_per_token: 5280,
            kv_f16_bytes: 5 << 20,
        }
    }

    #[test]
    fn plan_json_has_plain_integers() {
        let options = EngineOptions::default();
        let v = describe_plan(&plan(Some(300 << 20), KvConfig::quantized(2044)), &options);
        assert_eq!(v["budget"], 300u64 << 20);
        assert_eq!(v["weights"], 100u64 << 20);
        assert_eq!(v["kv"], 12u64 << 20);
        assert_eq!(v["scratch"], 3u64 << 20);
        assert_eq!(v["staging"], 1u64 << 20);
        assert_eq!(v["total"], 225u64 << 20);
        assert_eq!(v["device_buffers"], 115u64 << 20);
        assert_eq!(v["lines"].as_array().unwrap().len(), 10);
        assert_eq!(v["window"], 2044);
        assert_eq!(v["sinks"], 4);
        assert_eq!(v["span"], 2048);
        assert_eq!(v["cache_type_k"], "tq4");
        assert_eq!(v["cache_type_v"], "tq3");
        assert_eq!(v["recent_f16"], 256);
        assert_eq!(v["center_keys"], true);
        assert_eq!(v["rotate"], true);
        assert_eq!(v["batch"], options.batch);
        assert_eq!(
            v["kv_bytes_per_token"],
            json!({"f16": 23040, "q8": 12960, "q4": 7200, "tq4": 6000, "tq3": 4560})
        );
        assert_eq!(v["kv_ring_bytes_per_token"], 5280);
        let f16 = describe_plan(&plan(None, KvConfig::f16(100)), &options);
        assert_eq!(f16["budget"], serde_json::Value::Null);
        assert_eq!(
            (&f16["recent_f16"], &f16["rotate"]),
            (&json!(0), &json!(false))
        );
    }

    #[test]
    fn plan_text_names_every_part() {
        let options = EngineOptions::default();
        let v = describe_plan(&plan(Some(300 << 20), KvConfig::quantized(2044)), &options);
        let text = plan_lines(&v).join("\n");
        for part in [
            "memory plan     budget 300.00 MiB",
            "  weights       100.00 MiB",
            "  KV cache      12.00 MiB: window 2044 + 4 sinks = 2048 tokens, K tq4 V tq3 \
             (rotated, keys centered, newest 256 also in f16)",
            "  scratch       3.00 MiB (batch 32)",
            "  staging       1.00 MiB (upload)",
            "  driver        90.00 MiB (GPU driver and compiled pipelines, given)",
            "  tokenizer     5.00 MiB",
            "  readback      2.00 MiB (logits on the CPU, sampler)",
            "  total         225.00 MiB of 300.00 MiB",
            "  KV/token      23040 at f16, 12960 at q8, 7200 at q4, 6000 at tq4, 4560 at tq3",
            "  KV ring       5280 bytes/token (3.67 bits/value, 0.229x f16); sinks and newest \
             copies in f16: 5.00 MiB",
        ] {
            assert!(text.contains(part), "no {part:?} in:\n{text}");
        }
        let v = describe_plan(&plan(None, KvConfig::f16(100)), &options);
        let text = plan_lines(&v).join("\n");
        assert!(text.contains("memory plan     no budget"), "{text}");
        assert!(text.contains("K f16 V f16\n"), "{text}");
        assert!(plan_lines(&serde_json::Value::Null).is_empty());
    }
}

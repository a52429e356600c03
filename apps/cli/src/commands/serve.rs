//! `voyager serve -m MODEL [--host H] [--port P] [--parallel N] [--api-key KEY] ...`: the
//! OpenAI-compatible local server (the `voyager-server` crate) over one engine.

use std::net::{IpAddr, SocketAddr};

use anyhow::{Context, Result};
use voyager_runtime::budget::parse_size;
use voyager_runtime::engine::EngineOptions;
use voyager_server::{AppState, Limits, ServerOptions};

use crate::args::ModelArgs;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Address to listen on. The default answers this machine only; 0.0.0.0 opens the server
    /// to the network (then set --api-key).
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to listen on (0: any free port; the address is printed).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Requests served at once, each on its own session (cache and scratch), all planned
    /// inside --mem-budget (the same as --sessions).
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=EngineOptions::MAX_SESSIONS as i64))]
    parallel: Option<u32>,
    /// Requests that may wait when every session is busy; more are answered 503.
    #[arg(long, value_name = "N", default_value_t = 64)]
    queue: usize,
    /// Require `Authorization: Bearer KEY` on every route but /health (also
    /// $VOYAGER_API_KEY).
    #[arg(
        long = "api-key",
        value_name = "KEY",
        env = "VOYAGER_API_KEY",
        hide_env_values = true
    )]
    api_key: Option<String>,
    /// The most tokens one request may generate; also what a request without max_tokens
    /// gets.
    #[arg(long = "max-tokens", value_name = "N", default_value_t = 4096,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_tokens: u32,
    /// The largest request body accepted, e.g. 4MiB.
    #[arg(long = "max-body", value_name = "SIZE", default_value = "4MiB",
          value_parser = |s: &str| parse_size(s).map_err(|e| e.detail()))]
    max_body: u64,
    /// Another name the model answers to in requests' `model` (repeatable), for clients
    /// that send a fixed one.
    #[arg(long, value_name = "NAME")]
    alias: Vec<String>,
}

pub fn run(mut args: Args) -> Result<()> {
    if let Some(n) = args.parallel {
        args.model.sessions = n;
    }
    let engine = crate::load::engine(&args.model, false)?;
    let mut names = vec![served_name(&args.model.model)];
    names.extend(args.alias.iter().filter(|a| !a.is_empty()).cloned());
    let options = ServerOptions {
        api_key: args.api_key.filter(|k| !k.is_empty()),
        queue: args.queue,
        max_body: usize::try_from(args.max_body).unwrap_or(usize::MAX),
        limits: Limits {
            default_max_tokens: args.max_tokens as usize,
            max_tokens: args.max_tokens as usize,
        },
        names,
        mem_budget: args.model.mem_budget,
    };
    let state = AppState::new(engine.clone(), options)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the server's runtime")?;
    runtime.block_on(async move {
        let addr = SocketAddr::new(args.host, args.port);
        let (listener, local) = voyager_server::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let plan = engine.memory_plan();
        eprintln!(
            "voyager serve: listening on http://{local}/v1 ({}, {} parallel, window {} + {} \
             sinks, plan {} MiB{})",
            args.model.model,
            plan.sessions,
            engine.kv_config().window,
            engine.kv_config().sinks,
            plan.total() >> 20,
            if args.host.is_loopback() {
                ""
            } else {
                "; open to the network"
            },
        );
        voyager_server::serve(listener, state)
            .await
            .context("the server stopped")
    })
}

/// The name responses carry: a catalog name as given, a file by its stem.
fn served_name(model: &str) -> String {
    let path = std::path::Path::new(model);
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
    {
        if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
            return stem.to_owned();
        }
    }
    model.to_owned()
}

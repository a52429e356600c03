//! The memory plan and its enforcement, on SmolLM2-135M (pulled on first use): budgets too
//! small are refused before loading with the smallest one that works, the planner picks the
//! largest window that fits, a loaded engine's counted peak stays inside the budget, and a
//! budget planned for N sessions holds N of them, refuses the next and takes back what a
//! closed one held.

mod common;

use voyager_runtime::budget::{format_size, parse_size, plan};
use voyager_runtime::engine::{Engine, EngineOptions};
use voyager_runtime::kv::{KvPolicy, KvType};
use voyager_runtime::model::Model;
use voyager_runtime::Error;

const MODEL: &str = "smollm2-135m";

/// The driver and pipelines' memory, fixed so that a plan made here and the load agree (a
/// load otherwise measures it, which tests/memory in the CLI exercises).
const DRIVER: u64 = 100 << 20;

fn with_budget(budget: u64) -> EngineOptions {
    EngineOptions {
        mem_budget: Some(budget),
        driver_memory: Some(DRIVER),
        ..EngineOptions::default()
    }
}

#[test]
fn too_small_budgets_are_refused_naming_the_smallest_that_works() {
    let model = Model::open(&common::model_path(MODEL)).unwrap();
    let err = plan(&model, &with_budget(64 << 20)).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Budget { .. }), "{msg}");
    assert!(err.smallest_budget().is_some(), "{msg}");
    assert!(!msg.contains('\n'), "one line: {msg}");
    // "... use --mem-budget <SIZE> or more": that size works, a little less does not.
    let size = msg
        .split("use --mem-budget ")
        .nth(1)
        .and_then(|r| r.strip_suffix(" or more"))
        .unwrap_or_else(|| panic!("no size in: {msg}"));
    let smallest = parse_size(&size.replace(' ', "")).unwrap();
    // The suggestion is rounded up (to 0.01 MiB), so it may buy a token or two more.
    let p = plan(&model, &with_budget(smallest)).unwrap();
    let w = p.kv_config.window;
    assert!(
        (EngineOptions::MIN_WINDOW..EngineOptions::MIN_WINDOW + 4).contains(&w),
        "{w}"
    );
    assert!(plan(&model, &with_budget(smallest - (64 << 10))).is_err());
    // Loading refuses it too, before touching the GPU.
    let path = common::model_path(MODEL);
    let load = Engine::load(&path, &with_budget(64 << 20), &mut |_| {});
    assert!(matches!(load, Err(Error::Budget { .. })));
}

#[test]
fn the_planner_picks_the_largest_window_that_fits() {
    let model = Model::open(&common::model_path(MODEL)).unwrap();
    let mut last = 0;
    for mib in [240u64, 255, 270, 370] {
        let budget = mib << 20;
        let p = plan(&model, &with_budget(budget)).unwrap();
        let w = p.kv_config.window;
        assert!(p.total() <= budget, "{mib} MiB: {}", p.breakdown());
        assert!(w > last, "{mib} MiB: window {w} after {last}");
        last = w;
        // One more token would not fit, unless the model's context (8192) caps the window.
        if w + p.kv_config.sinks == 8192 {
            assert_eq!(mib, 370);
            continue;
        }
        let bigger = EngineOptions {
            window: Some(w + 1),
            ..with_budget(budget)
        };
        match plan(&model, &bigger) {
            Err(e) => assert!(e.to_string().contains("--mem-budget"), "{e}"),
            Ok(_) => panic!("{mib} MiB: a window of {} also fits", w + 1),
        }
        eprintln!("{mib} MiB: window {w}, {}", p.breakdown());
    }
    // An explicit window over the budget is refused, naming what it needs.
    let err = plan(
        &model,
        &EngineOptions {
            window: Some(8000),
            ..with_budget(260 << 20)
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("8000-token window"), "{err}");
}

/// The codebook cache (tq4 keys, tq3 values) costs 5280 ring bytes a token against q4's 7200;
/// the sinks and newest copies stay f16 either way, so the same budget plans a window longer by
/// what the ring saves.
#[test]
fn narrower_cache_types_buy_a_longer_window_in_the_same_budget() {
    let model = Model::open(&common::model_path(MODEL)).unwrap();
    let budget = 255u64 << 20;
    let planned = |k, v| {
        let p = plan(
            &model,
            &EngineOptions {
                cache_type_k: k,
                cache_type_v: v,
                ..with_budget(budget)
            },
        )
        .unwrap();
        assert!(p.total() <= budget, "{}", p.breakdown());
        p
    };
    let q4 = planned(KvType::Q4, KvType::Q4);
    let tq = planned(KvType::Tq4, KvType::Tq3);
    assert_eq!(
        (q4.kv_ring_bytes_per_token, tq.kv_ring_bytes_per_token),
        (7200, 5280)
    );
    assert_eq!(q4.kv_f16_bytes, tq.kv_f16_bytes);
    let (wq, wt) = (q4.kv_config.window, tq.kv_config.window);
    eprintln!("{budget}: window {wq} at q4/q4, {wt} at tq4/tq3");
    // The ring bytes the q4 window takes hold a longer tq window, less what the longer window
    // adds to scratch (attention partials): within 5% of the whole ratio.
    let ideal = f64::from(wq) * 7200.0 / 5280.0;
    assert!(
        f64::from(wt) > 0.95 * ideal && f64::from(wt) <= ideal + 1.0,
        "{wt} vs {ideal}"
    );
}

/// The importance policy's slot table (12 bytes a ring slot and layer on the device: position,
/// last query, score; the score staging and the host's copy besides) comes out of the same
/// budget: a shorter window, never a plan over it.
#[test]
fn the_importance_policy_pays_for_its_table_in_the_same_budget() {
    let model = Model::open(&common::model_path(MODEL)).unwrap();
    let budget = 255u64 << 20;
    let planned = |policy| {
        let p = plan(
            &model,
            &EngineOptions {
                kv_policy: policy,
                ..with_budget(budget)
            },
        )
        .unwrap();
        assert!(p.total() <= budget, "{}", p.breakdown());
        p
    };
    let window = planned(KvPolicy::Window);
    let importance = planned(KvPolicy::Importance);
    assert_eq!(importance.kv_config.policy, KvPolicy::Importance);
    let (ww, wi) = (window.kv_config.window, importance.kv_config.window);
    eprintln!("{budget}: window {ww} under the window policy, {wi} under importance");
    // 5280 ring bytes a token against 5280 + 30 layers x (12 table + 4 score staging + 13 on
    // the host): the window shrinks by about 14%.
    let ideal = f64::from(ww) * 5280.0 / (5280.0 + 30.0 * 29.0);
    assert!(
        wi < ww && (f64::from(wi) / ideal - 1.0).abs() < 0.03,
        "{wi} vs {ideal}"
    );
}

#[test]
fn the_counted_peak_stays_inside_the_budget() {
    let budget = parse_size("270MiB").unwrap();
    let options = EngineOptions {
        scoring: true,
        ..with_budget(budget)
    };
    let path = common::model_path(MODEL);
    let planned = plan(&Model::open(&path).unwrap(), &options).unwrap();
    let engine = Engine::load(&path, &options, &mut |_| {}).unwrap();
    assert_eq!(engine.kv_config(), &planned.kv_config);
    let mut session = engine.session().unwrap();
    // Scoring allocates the all-rows head; a reply decodes.
    let tok = &engine.model().tokenizer;
    let ids = tok
        .encode("The quick brown fox jumps over the lazy dog.", true)
        .unwrap();
    session.score(&ids).unwrap();
    session.feed(&ids[..3]).unwrap();
    let stats = engine.gpu().memory_stats();
    let counted_plan = planned.weights + planned.kv + planned.scratch;
    eprintln!(
        "budget {budget}, plan {} ({}), counted peak {}",
        planned.total(),
        planned.breakdown(),
        stats.peak_bytes
    );
    assert!(stats.peak_bytes + planned.outside_buffers() <= budget);
    assert!(stats.peak_bytes <= counted_plan, "the plan under-counts");
    // The plan is an honest estimate, not a blanket margin: within 1% of what was counted.
    assert!(
        (counted_plan - stats.peak_bytes) as f64 <= 0.01 * counted_plan as f64,
        "plan {counted_plan} vs counted {}",
        stats.peak_bytes
    );
}

#[test]
fn a_budget_for_two_sessions_holds_two_and_refuses_a_third() {
    let path = common::model_path(MODEL);
    let model = Model::open(&path).unwrap();
    let one = EngineOptions {
        window: Some(256),
        driver_memory: Some(DRIVER),
        ..EngineOptions::default()
    };
    let two = EngineOptions {
        max_sessions: 2,
        ..one.clone()
    };
    let p1 = plan(&model, &one).unwrap();
    let p2 = plan(&model, &two).unwrap();
    // The weights are shared; each session adds its cache and scratch.
    assert_eq!(p2.total() - p1.total(), p1.per_session());
    assert_eq!(p2.shared(), p1.shared());
    // A budget that fits two sessions of this window, not three.
    let budget = p2.total() + p1.per_session() / 2;
    let engine = Engine::load(
        &path,
        &EngineOptions {
            mem_budget: Some(budget),
            ..two
        },
        &mut |_| {},
    )
    .unwrap();
    let alloc = engine.gpu().allocator();
    let before = alloc.live_bytes();
    let a = engine.session().unwrap();
    let with_one = alloc.live_bytes();
    let b = engine.session().unwrap();
    assert_eq!(engine.open_sessions(), 2);
    let err = engine.session().err().expect("a third session was opened");
    let msg = err.to_string();
    assert!(matches!(err, Error::Budget { .. }), "{msg}");
    assert!(!msg.contains('\n') && msg.contains("--sessions 3"), "{msg}");
    // What it names is enough for three.
    let three = plan(
        &model,
        &EngineOptions {
            max_sessions: 3,
            ..one.clone()
        },
    )
    .unwrap();
    assert!(err.smallest_budget().unwrap() >= three.total(), "{msg}");
    assert!(
        alloc.peak_bytes() + p2.outside_buffers() <= budget,
        "over the budget"
    );
    eprintln!("{msg}");
    // Closing a session gives back every byte it held, and makes room for a new one.
    drop(b);
    assert_eq!(alloc.live_bytes(), with_one, "a closed session kept bytes");
    assert_eq!(engine.open_sessions(), 1);
    let c = engine.session().unwrap();
    drop((a, c));
    assert_eq!(alloc.live_bytes(), before);
    assert_eq!(engine.open_sessions(), 0);
    eprintln!(
        "two sessions in {}: each {}",
        format_size(budget),
        format_size(p1.per_session())
    );
}

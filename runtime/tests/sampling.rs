//! Tests of the CPU token sampler (`voyager_runtime::engine::sampling`).
//!
//! Statistical tests use fixed seeds, so they are deterministic: the bounds below are chosen so
//! that a *correct* sampler would fail them with probability ~1e-3 or less for a random seed, and
//! each comes with a negative control showing the bound is tight enough to catch a wrong
//! distribution.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use voyager_runtime::engine::sampling::{Candidate, Sampler, SamplingParams};

// ---------------------------------------------------------------------------------------------
// Allocation counting (per thread, so tests running in parallel do not disturb each other).

struct CountingAlloc;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn bump() {
    // `try_with`: the counter may be gone while the thread is being torn down.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: forwards every call to the system allocator unchanged; the counter is a const-initialized
// thread-local `Cell` without a destructor, so touching it never allocates or re-enters.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        bump();
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

// ---------------------------------------------------------------------------------------------
// Helpers.

/// A tiny deterministic generator for test logits (splitmix64), independent of the sampler's RNG.
struct TestRng(u64);

impl TestRng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [lo, hi).
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }
    fn logits(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}

/// Everything but temperature disabled.
fn pure_temperature(temperature: f32, seed: u64) -> SamplingParams {
    SamplingParams {
        temperature,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        repeat_penalty: 1.0,
        repeat_last_n: 64,
        seed,
        ..SamplingParams::default()
    }
}

fn softmax(logits: &[f32], temperature: f32) -> Vec<f64> {
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let w: Vec<f64> = logits
        .iter()
        .map(|&l| ((l as f64 - max) / temperature as f64).exp())
        .collect();
    let s: f64 = w.iter().sum();
    w.iter().map(|x| x / s).collect()
}

fn histogram(sampler: &mut Sampler, logits: &[f32], draws: usize) -> Vec<usize> {
    let mut counts = vec![0usize; logits.len()];
    for _ in 0..draws {
        counts[sampler.sample(logits, &[]) as usize] += 1;
    }
    counts
}

/// Pearson's chi-square statistic of `counts` against expected probabilities `p`.
fn chi_square(counts: &[usize], p: &[f64]) -> f64 {
    let n: usize = counts.iter().sum();
    counts
        .iter()
        .zip(p)
        .map(|(&o, &p)| {
            let e = p * n as f64;
            (o as f64 - e).powi(2) / e
        })
        .sum()
}

/// Logits whose softmax (T = 1) is exactly `probs`.
fn logits_for(probs: &[f64]) -> Vec<f32> {
    probs.iter().map(|p| p.ln() as f32).collect()
}

/// Sorted ids of the distribution's support.
fn support(d: &[Candidate]) -> Vec<u32> {
    let mut ids: Vec<u32> = d.iter().map(|c| c.id).collect();
    ids.sort_unstable();
    ids
}

/// Naive reference of the whole chain: full sort, top-k, top-p, min-p, temperature, softmax.
/// Returns (id, probability) sorted by id.
fn reference_distribution(logits: &[f32], p: &SamplingParams) -> Vec<(u32, f64)> {
    let mut c: Vec<(u32, f32)> = logits
        .iter()
        .enumerate()
        .map(|(i, &l)| (i as u32, if l.is_nan() { f32::NEG_INFINITY } else { l }))
        .collect();
    c.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap().then(a.0.cmp(&b.0)));
    if p.top_k > 0 {
        c.truncate(p.top_k);
    }
    if p.top_p < 1.0 {
        let probs = softmax(&c.iter().map(|x| x.1).collect::<Vec<_>>(), 1.0);
        let mut cum = 0.0;
        let mut keep = c.len();
        for (i, q) in probs.iter().enumerate() {
            cum += q;
            if cum >= p.top_p as f64 {
                keep = i + 1;
                break;
            }
        }
        c.truncate(keep);
    }
    if p.min_p > 0.0 {
        let probs = softmax(&c.iter().map(|x| x.1).collect::<Vec<_>>(), 1.0);
        let pmax = probs[0];
        let keep = probs
            .iter()
            .take_while(|&&q| q >= p.min_p as f64 * pmax)
            .count();
        c.truncate(keep.max(1));
    }
    let probs = softmax(&c.iter().map(|x| x.1).collect::<Vec<_>>(), p.temperature);
    let mut out: Vec<(u32, f64)> = c.iter().map(|x| x.0).zip(probs).collect();
    out.sort_by_key(|x| x.0);
    out
}

// ---------------------------------------------------------------------------------------------
// Greedy.

#[test]
fn greedy_picks_argmax_and_lowest_id_on_ties() {
    let mut s = Sampler::new(SamplingParams::greedy());
    assert_eq!(s.sample(&[0.1, 2.0, -1.0, 1.9], &[]), 1);
    assert_eq!(s.sample(&[0.5, 3.0, 3.0, 3.0, -7.0], &[]), 1);
    assert_eq!(s.sample(&[4.0, 4.0], &[]), 0);
    assert_eq!(s.sample(&[-5.0], &[]), 0);
    // -0.0 and 0.0 are equal logits: lowest id wins.
    assert_eq!(s.sample(&[-1.0, -0.0, 0.0], &[]), 1);
    let d = s.distribution(&[0.0, 7.0, 7.0], &[]).to_vec();
    assert_eq!(
        d,
        vec![Candidate {
            id: 1,
            logit: 7.0,
            p: 1.0
        }]
    );
}

#[test]
fn zero_or_negative_temperature_ignores_the_rng() {
    let mut rng = TestRng(7);
    let rows: Vec<Vec<f32>> = (0..50).map(|_| rng.logits(100, -3.0, 3.0)).collect();
    for temperature in [0.0, -1.0] {
        let mut a = Sampler::new(SamplingParams {
            temperature,
            seed: 1,
            ..SamplingParams::default()
        });
        let mut b = Sampler::new(SamplingParams {
            temperature,
            seed: 0xDEAD_BEEF,
            ..SamplingParams::default()
        });
        for row in &rows {
            let expected = row
                .iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (i, &l)| {
                    if l > best.1 {
                        (i as u32, l)
                    } else {
                        best
                    }
                })
                .0;
            assert_eq!(a.sample(row, &[]), expected);
            assert_eq!(b.sample(row, &[]), expected);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Determinism and the RNG.

#[test]
fn same_seed_same_sequence_different_seed_different_sequence() {
    // A flat-ish distribution over 16 tokens, 300 draws, through the default chain.
    let logits: Vec<f32> = (0..16).map(|i| (i % 4) as f32 * 0.1).collect();
    let run = |seed: u64| {
        let mut s = Sampler::new(SamplingParams {
            seed,
            ..SamplingParams::default()
        });
        let mut history = Vec::new();
        for _ in 0..300 {
            let t = s.sample(&logits, &history);
            history.push(t);
        }
        history
    };
    let a = run(123);
    assert_eq!(a, run(123));
    let b = run(124);
    assert_ne!(a, b);
    // Not merely different somewhere: two independent streams agree on ~1/16 of positions
    // (expected ~19 of 300; binomial sd ~4.2). 60 is ~10 sd away.
    let agree = a.iter().zip(&b).filter(|(x, y)| x == y).count();
    assert!(agree < 60, "seeds 123 and 124 agree on {agree}/300 draws");
    // Every token shows up (expected 18.75 each).
    for t in 0..16u32 {
        assert!(a.contains(&t), "token {t} never drawn");
    }
    // Default seed is fixed, so two default samplers agree too.
    let mut d1 = Sampler::new(SamplingParams::default());
    let mut d2 = Sampler::new(SamplingParams::default());
    for _ in 0..100 {
        assert_eq!(d1.sample(&logits, &[]), d2.sample(&logits, &[]));
    }
}

#[test]
fn clone_continues_the_same_stream() {
    let logits = [0.0f32; 10];
    let mut a = Sampler::new(pure_temperature(1.0, 5));
    for _ in 0..7 {
        a.sample(&logits, &[]);
    }
    let mut b = a.clone();
    for _ in 0..50 {
        assert_eq!(a.sample(&logits, &[]), b.sample(&logits, &[]));
    }
}

#[test]
fn empirical_frequencies_match_softmax_over_temperature() {
    // 8 tokens, T = 0.7. The smallest probability here is ~0.024, so every expected count over
    // 20,000 draws is >= ~480, far above the >= 5 needed for the chi-square approximation.
    // With 7 degrees of freedom the 0.1% critical value is 24.32: a correct sampler exceeds it
    // for one seed in a thousand. We also require |f_i - p_i| <= 5 * sqrt(p_i (1 - p_i) / N)
    // for each token (a 5-sigma binomial bound, < 6e-7 per token).
    let logits = [1.0f32, 0.5, 0.0, -0.5, 2.0, 1.5, 0.25, -1.0];
    let t = 0.7;
    let n = 20_000;
    let p = softmax(&logits, t);
    for seed in [1u64, 2, 3] {
        let mut s = Sampler::new(pure_temperature(t, seed));
        let counts = histogram(&mut s, &logits, n);
        let chi2 = chi_square(&counts, &p);
        assert!(
            chi2 < 24.32,
            "seed {seed}: chi2 = {chi2:.2}, counts {counts:?}"
        );
        for (i, (&c, &pi)) in counts.iter().zip(&p).enumerate() {
            let f = c as f64 / n as f64;
            let bound = 5.0 * (pi * (1.0 - pi) / n as f64).sqrt();
            assert!(
                (f - pi).abs() <= bound,
                "seed {seed}, token {i}: frequency {f:.4} vs p {pi:.4}"
            );
        }
        // Negative controls: the same counts are wildly off for T = 1 and for T = 0.5, so the
        // test really sees the temperature.
        assert!(chi_square(&counts, &softmax(&logits, 1.0)) > 200.0);
        assert!(chi_square(&counts, &softmax(&logits, 0.5)) > 200.0);
    }
    // The reported distribution is the exact softmax.
    let mut s = Sampler::new(pure_temperature(t, 0));
    let mut d = s.distribution(&logits, &[]).to_vec();
    d.sort_by_key(|c| c.id);
    for (c, &pi) in d.iter().zip(&p) {
        assert!((c.p as f64 - pi).abs() < 1e-6);
    }
}

// ---------------------------------------------------------------------------------------------
// Top-k, top-p, min-p.

#[test]
fn top_k_one_equals_greedy() {
    let mut rng = TestRng(11);
    let mut greedy = Sampler::new(SamplingParams::greedy());
    let mut k1 = Sampler::new(SamplingParams {
        top_k: 1,
        temperature: 1.5,
        top_p: 1.0,
        min_p: 0.0,
        ..SamplingParams::default()
    });
    for i in 0..200 {
        let mut row = rng.logits(500, -4.0, 4.0);
        if i % 3 == 0 {
            // Force ties at the top.
            let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            row[17] = m;
            row[400] = m;
        }
        assert_eq!(k1.sample(&row, &[]), greedy.sample(&row, &[]), "row {i}");
    }
}

#[test]
fn top_k_restricts_support() {
    let mut rng = TestRng(3);
    let logits = rng.logits(100, 0.0, 1.0);
    let mut ranked: Vec<u32> = (0..100).collect();
    ranked.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]));
    let top5: Vec<u32> = {
        let mut v = ranked[..5].to_vec();
        v.sort_unstable();
        v
    };
    let mut s = Sampler::new(SamplingParams {
        top_k: 5,
        top_p: 1.0,
        min_p: 0.0,
        temperature: 1.0,
        ..SamplingParams::default()
    });
    assert_eq!(support(s.distribution(&logits, &[])), top5);
    let mut seen = [0usize; 100];
    for _ in 0..2000 {
        seen[s.sample(&logits, &[]) as usize] += 1;
    }
    for (id, &c) in seen.iter().enumerate() {
        // Probabilities within the top 5 are all >= ~0.15 here, i.e. >= ~300 expected draws.
        assert_eq!(c > 0, top5.contains(&(id as u32)), "token {id}: {c} draws");
    }
}

#[test]
fn top_p_keeps_the_minimal_nucleus() {
    // Probabilities 0.5, 0.3, 0.15, 0.05, shuffled across ids.
    let probs = [0.15, 0.05, 0.5, 0.3];
    let logits = logits_for(&probs);
    let cases: [(f32, &[u32]); 4] = [
        (0.45, &[2]),
        (0.7, &[2, 3]),
        (0.9, &[0, 2, 3]),
        (0.99, &[0, 1, 2, 3]),
    ];
    for (top_p, expected) in cases {
        let params = SamplingParams {
            top_k: 0,
            top_p,
            min_p: 0.0,
            temperature: 1.0,
            ..SamplingParams::default()
        };
        let mut s = Sampler::new(params);
        let d = s.distribution(&logits, &[]).to_vec();
        assert_eq!(support(&d), expected, "top_p {top_p}");
        // Renormalized over the nucleus.
        let mass: f64 = expected.iter().map(|&i| probs[i as usize]).sum();
        for c in &d {
            assert!((c.p as f64 - probs[c.id as usize] / mass).abs() < 1e-6);
        }
        for _ in 0..2000 {
            assert!(expected.contains(&s.sample(&logits, &[])));
        }
    }
    // With top-k first, the probabilities are renormalized over the top-k set: over {0.5, 0.3}
    // they are 0.625 / 0.375, so top_p = 0.6 keeps only the first.
    let mut s = Sampler::new(SamplingParams {
        top_k: 2,
        top_p: 0.6,
        min_p: 0.0,
        temperature: 1.0,
        ..SamplingParams::default()
    });
    assert_eq!(support(s.distribution(&logits, &[])), vec![2]);
    // Top-p runs before temperature: a high temperature flattens the draw but not the nucleus.
    let mut s = Sampler::new(SamplingParams {
        top_k: 0,
        top_p: 0.7,
        min_p: 0.0,
        temperature: 5.0,
        ..SamplingParams::default()
    });
    assert_eq!(support(s.distribution(&logits, &[])), vec![2, 3]);
}

#[test]
fn top_p_large_nucleus_in_a_flat_vocab() {
    // 5000 nearly equal logits: the nucleus for top_p = 0.9 is ~4500 tokens, which takes several
    // rounds of the chunked partial sort. Compare with the naive reference.
    let mut rng = TestRng(99);
    let logits = rng.logits(5000, 0.0, 0.05);
    let params = SamplingParams {
        top_k: 0,
        top_p: 0.9,
        min_p: 0.0,
        temperature: 1.0,
        ..SamplingParams::default()
    };
    let reference = reference_distribution(&logits, &params);
    assert!(reference.len() > 4000, "nucleus {}", reference.len());
    let mut s = Sampler::new(params);
    let mut d = s.distribution(&logits, &[]).to_vec();
    d.sort_by_key(|c| c.id);
    assert_eq!(d.len(), reference.len());
    for (c, r) in d.iter().zip(&reference) {
        assert_eq!(c.id, r.0);
        assert!((c.p as f64 - r.1).abs() < 1e-7);
    }
}

#[test]
fn min_p_cuts_tokens_below_min_p_times_p_max() {
    let probs = [0.15, 0.05, 0.5, 0.3];
    let logits = logits_for(&probs);
    // p_max = 0.5. min_p 0.2 -> threshold 0.1: drop 0.05. min_p 0.5 -> 0.25: keep 0.5, 0.3.
    // min_p 0.9 -> 0.45: only the top. min_p 1.0: only the top.
    let cases: [(f32, &[u32]); 4] = [(0.2, &[0, 2, 3]), (0.5, &[2, 3]), (0.9, &[2]), (1.0, &[2])];
    for (min_p, expected) in cases {
        let mut s = Sampler::new(SamplingParams {
            top_k: 0,
            top_p: 1.0,
            min_p,
            temperature: 1.0,
            ..SamplingParams::default()
        });
        assert_eq!(
            support(s.distribution(&logits, &[])),
            expected,
            "min_p {min_p}"
        );
        for _ in 0..2000 {
            assert!(expected.contains(&s.sample(&logits, &[])));
        }
    }
    // Min-p is relative: scaling every probability by the same factor (a logit shift) changes
    // nothing, and it applies before temperature.
    let shifted: Vec<f32> = logits.iter().map(|l| l + 10.0).collect();
    let mut s = Sampler::new(SamplingParams {
        top_k: 0,
        top_p: 1.0,
        min_p: 0.2,
        temperature: 3.0,
        ..SamplingParams::default()
    });
    assert_eq!(support(s.distribution(&shifted, &[])), vec![0, 2, 3]);
}

#[test]
fn optimized_chain_matches_naive_reference() {
    // Random rows and parameter combinations; the sampler's distribution must equal the naive
    // full-sort implementation of the same chain, support and probabilities.
    let mut rng = TestRng(2024);
    let combos = [
        (40, 0.95, 0.05, 0.8),
        (0, 0.95, 0.05, 0.8),
        (0, 0.5, 0.0, 1.0),
        (0, 1.0, 0.1, 1.3),
        (300, 0.99, 0.0, 0.6),
        (7, 1.0, 0.0, 2.0),
        (0, 0.3, 0.3, 0.9),
        (1000, 0.9, 0.01, 1.0),
    ];
    for (row_i, n) in [50usize, 1000, 3000].into_iter().enumerate() {
        for spread in [1.0f32, 6.0, 20.0] {
            let logits = rng.logits(n, -spread, spread);
            for &(top_k, top_p, min_p, temperature) in &combos {
                let params = SamplingParams {
                    top_k,
                    top_p,
                    min_p,
                    temperature,
                    ..SamplingParams::default()
                };
                let reference = reference_distribution(&logits, &params);
                let mut s = Sampler::new(params.clone());
                let mut d = s.distribution(&logits, &[]).to_vec();
                d.sort_by_key(|c| c.id);
                let got: Vec<u32> = d.iter().map(|c| c.id).collect();
                let want: Vec<u32> = reference.iter().map(|r| r.0).collect();
                assert_eq!(got, want, "row {row_i} spread {spread} params {params:?}");
                for (c, r) in d.iter().zip(&reference) {
                    assert!(
                        (c.p as f64 - r.1).abs() < 1e-5,
                        "{params:?}: {c:?} vs {r:?}"
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Repetition penalty.

fn penalized(penalty: f32, last_n: usize) -> Sampler {
    Sampler::new(SamplingParams {
        repeat_penalty: penalty,
        repeat_last_n: last_n,
        ..SamplingParams::greedy()
    })
}

#[test]
fn repeat_penalty_divides_positive_and_multiplies_negative_logits() {
    let mut s = penalized(1.5, 64);
    // Positive: 2.0 / 1.5 = 1.33 < 1.5, so token 1 wins.
    assert_eq!(s.sample(&[2.0, 1.5], &[0]), 1);
    assert_eq!(s.sample(&[2.0, 1.5], &[]), 0);
    // Negative: -1.0 * 1.5 = -1.5 < -1.2, so token 1 wins (dividing would have made it -0.67).
    assert_eq!(s.sample(&[-1.0, -1.2], &[0]), 1);
    // Zero counts as non-positive: 0 * 1.5 = 0, unchanged.
    assert_eq!(s.sample(&[0.0, -0.1], &[0]), 0);
    // Penalty only: 1.5 > 1 keeps id 0 on top.
    assert_eq!(s.sample(&[3.0, -2.0, 1.0], &[0, 1]), 0);
}

/// The post-penalty logits, by id, read back through `distribution` with every filter off.
fn penalized_logits(penalty: f32, last_n: usize, logits: &[f32], history: &[u32]) -> Vec<f32> {
    let mut s = Sampler::new(SamplingParams {
        repeat_penalty: penalty,
        repeat_last_n: last_n,
        ..pure_temperature(1.0, 0)
    });
    let mut d = s.distribution(logits, history).to_vec();
    d.sort_by_key(|c| c.id);
    d.iter().map(|c| c.logit).collect()
}

#[test]
fn repeat_penalty_exact_values_and_window() {
    let logits = [3.0f32, -2.0, 1.0, 0.5, -0.25, 4.0];
    // Tokens 0 (positive) and 1 (negative) seen; 7 is out of the vocabulary and ignored.
    assert_eq!(
        penalized_logits(2.0, 64, &logits, &[0, 1, 7]),
        vec![1.5, -4.0, 1.0, 0.5, -0.25, 4.0]
    );
    // Applied once per distinct token, however often it occurs in the window.
    assert_eq!(
        penalized_logits(2.0, 64, &logits, &[3, 3, 3, 4, 4]),
        vec![3.0, -2.0, 1.0, 0.25, -0.5, 4.0]
    );
    // Only the last `repeat_last_n` tokens count: with a window of 3 over [0, 5, 2, 2], token 0
    // is out of the window; 5 and 2 are in.
    assert_eq!(
        penalized_logits(2.0, 3, &logits, &[0, 5, 2, 2]),
        vec![3.0, -2.0, 0.5, 0.5, -0.25, 2.0]
    );
    // repeat_last_n = 0 and repeat_penalty = 1 both disable it; usize::MAX means the whole history.
    assert_eq!(penalized_logits(2.0, 0, &logits, &[0, 1]), logits.to_vec());
    assert_eq!(penalized_logits(1.0, 64, &logits, &[0, 1]), logits.to_vec());
    let long: Vec<u32> = std::iter::once(0)
        .chain(std::iter::repeat_n(2, 1000))
        .collect();
    assert_eq!(penalized_logits(2.0, usize::MAX, &logits, &long)[0], 1.5);
    assert_eq!(penalized_logits(2.0, 64, &logits, &long)[0], 3.0);

    // The window also decides greedy outcomes.
    let mut s = penalized(1.1, 3);
    // 3.0 / 1.1 = 2.73 > 2.5 (once); applying it three times would give 2.25 < 2.5.
    assert_eq!(s.sample(&[3.0, 2.5], &[0, 0, 0]), 0);
    // 3.0 / 1.1 = 2.73 < 2.9.
    assert_eq!(
        s.sample(&[3.0, 2.9], &[0, 1, 1, 1]),
        0,
        "token 0 is outside the window"
    );
    assert_eq!(s.sample(&[3.0, 2.9, -5.0], &[2, 2, 0]), 1);
}

#[test]
fn frequency_and_presence_penalties_count_occurrences_in_the_window() {
    let logits = [3.0f32, -2.0, 1.0, 0.5];
    let read = |freq: f32, present: f32, repeat: f32, last_n: usize, history: &[u32]| {
        let mut s = Sampler::new(SamplingParams {
            frequency_penalty: freq,
            presence_penalty: present,
            repeat_penalty: repeat,
            repeat_last_n: last_n,
            ..pure_temperature(1.0, 0)
        });
        let mut d = s.distribution(&logits, history).to_vec();
        d.sort_by_key(|c| c.id);
        d.iter().map(|c| c.logit).collect::<Vec<_>>()
    };
    // Token 0 three times, token 2 once, 9 outside the vocabulary: frequency 0.5 per
    // occurrence, presence 0.25 once.
    assert_eq!(
        read(0.5, 0.25, 1.0, 64, &[0, 2, 0, 9, 0]),
        vec![3.0 - 1.5 - 0.25, -2.0, 1.0 - 0.5 - 0.25, 0.5]
    );
    // Negative values raise the logits (OpenAI allows -2..2).
    assert_eq!(read(-1.0, 0.0, 1.0, 64, &[1, 1]), vec![3.0, 0.0, 1.0, 0.5]);
    // The window bounds the count; the repetition penalty comes first (3 / 2 - 2 * 0.5).
    assert_eq!(
        read(0.5, 0.0, 2.0, 2, &[0, 0, 0]),
        vec![0.5, -2.0, 1.0, 0.5]
    );
    // Both at 0 change nothing; a non-finite value is refused by validate.
    assert_eq!(read(0.0, 0.0, 1.0, 64, &[0, 1, 2]), logits.to_vec());
    let bad = SamplingParams {
        frequency_penalty: f32::NAN,
        ..SamplingParams::default()
    };
    assert!(bad.validate().unwrap_err().contains("frequency_penalty"));
}

// ---------------------------------------------------------------------------------------------
// Robustness.

#[test]
fn nan_and_infinite_logits_do_not_panic() {
    let nan = f32::NAN;
    for params in [
        SamplingParams::greedy(),
        SamplingParams::default(),
        pure_temperature(1.0, 9),
        SamplingParams {
            top_k: 0,
            ..SamplingParams::default()
        },
    ] {
        let mut s = Sampler::new(params.clone());
        for _ in 0..200 {
            // NaN is -inf: never chosen while something finite exists.
            let t = s.sample(&[nan, 1.0, nan, 0.5], &[0, 2]);
            assert!(t == 1 || t == 3, "{params:?} picked {t}");
        }
        // All NaN / all -inf: the lowest id, deterministically.
        assert_eq!(s.sample(&[nan, nan, nan], &[]), 0);
        assert_eq!(s.sample(&[f32::NEG_INFINITY; 4], &[1]), 0);
        // +inf dominates everything else; ties between +inf go by the draw (or lowest id).
        for _ in 0..50 {
            let t = s.sample(&[1.0, f32::INFINITY, nan, f32::INFINITY, 1e30], &[]);
            assert!(t == 1 || t == 3, "{params:?} picked {t}");
        }
        assert_eq!(s.sample(&[f32::INFINITY, 1.0], &[0]), 0);
        // Single-token vocabulary.
        assert_eq!(s.sample(&[nan], &[0]), 0);
    }
}

#[test]
fn out_of_range_params_do_not_panic() {
    let logits = [0.3f32, -1.0, 2.0, 0.0];
    for params in [
        SamplingParams {
            top_p: 0.0,
            ..SamplingParams::default()
        },
        SamplingParams {
            top_p: f32::NAN,
            min_p: f32::NAN,
            ..SamplingParams::default()
        },
        SamplingParams {
            min_p: 5.0,
            top_k: 10_000,
            ..SamplingParams::default()
        },
        SamplingParams {
            repeat_penalty: -2.0,
            ..SamplingParams::default()
        },
        SamplingParams {
            temperature: f32::NAN,
            ..SamplingParams::default()
        },
        SamplingParams {
            temperature: 1e-30,
            ..SamplingParams::default()
        },
    ] {
        let mut s = Sampler::new(params);
        for _ in 0..20 {
            assert!(s.sample(&logits, &[2, 2]) < 4);
        }
    }
    // A tiny temperature behaves like greedy.
    let mut s = Sampler::new(pure_temperature(1e-6, 1));
    for _ in 0..100 {
        assert_eq!(s.sample(&logits, &[]), 2);
    }
}

#[test]
fn validate_messages() {
    assert_eq!(SamplingParams::default().validate(), Ok(()));
    assert_eq!(SamplingParams::greedy().validate(), Ok(()));
    let err = |p: SamplingParams| p.validate().unwrap_err();
    let d = SamplingParams::default;
    let cases = [
        (
            SamplingParams {
                temperature: -0.5,
                ..d()
            },
            "temperature",
            "-0.5",
        ),
        (
            SamplingParams {
                temperature: f32::NAN,
                ..d()
            },
            "temperature",
            "NaN",
        ),
        (
            SamplingParams {
                temperature: f32::INFINITY,
                ..d()
            },
            "temperature",
            "inf",
        ),
        (SamplingParams { top_p: 0.0, ..d() }, "top_p", "(0, 1]"),
        (SamplingParams { top_p: 1.5, ..d() }, "top_p", "1.5"),
        (
            SamplingParams {
                top_p: f32::NAN,
                ..d()
            },
            "top_p",
            "NaN",
        ),
        (SamplingParams { min_p: -0.1, ..d() }, "min_p", "[0, 1]"),
        (SamplingParams { min_p: 1.01, ..d() }, "min_p", "1.01"),
        (
            SamplingParams {
                min_p: f32::NAN,
                ..d()
            },
            "min_p",
            "NaN",
        ),
        (
            SamplingParams {
                repeat_penalty: 0.0,
                ..d()
            },
            "repeat_penalty",
            "> 0",
        ),
        (
            SamplingParams {
                repeat_penalty: -1.0,
                ..d()
            },
            "repeat_penalty",
            "-1",
        ),
        (
            SamplingParams {
                repeat_penalty: f32::NAN,
                ..d()
            },
            "repeat_penalty",
            "NaN",
        ),
    ];
    for (params, field, detail) in cases {
        let msg = err(params.clone());
        assert!(msg.starts_with(field), "{params:?}: {msg}");
        assert!(msg.contains(detail), "{params:?}: {msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }
    // Boundaries that are valid.
    for p in [
        SamplingParams {
            temperature: 0.0,
            top_p: 1.0,
            min_p: 0.0,
            ..d()
        },
        SamplingParams {
            top_p: 1e-6,
            min_p: 1.0,
            repeat_penalty: 1e-3,
            ..d()
        },
        SamplingParams {
            top_k: 0,
            repeat_last_n: 0,
            ..d()
        },
    ] {
        assert_eq!(p.validate(), Ok(()), "{p:?}");
    }
    // Defaults are llama.cpp's.
    let p = d();
    assert_eq!(
        (
            p.temperature,
            p.top_k,
            p.top_p,
            p.min_p,
            p.repeat_penalty,
            p.repeat_last_n
        ),
        (0.8, 40, 0.95, 0.05, 1.0, 64)
    );
}

// ---------------------------------------------------------------------------------------------
// Large vocabulary: no allocation per call after the first.

#[test]
fn large_vocab_does_not_allocate_after_first_call() {
    const VOCAB: usize = 262_144;
    let mut rng = TestRng(5);
    let rows: Vec<Vec<f32>> = (0..3).map(|_| rng.logits(VOCAB, -10.0, 10.0)).collect();
    // A flat row makes top-p's nucleus large (chunked partial sorts over most of the vocab).
    let flat = rng.logits(VOCAB, 0.0, 0.01);
    let history: Vec<u32> = (0..64).map(|i| (i * 4099) % VOCAB as u32).collect();
    let configs = [
        SamplingParams::default(),
        SamplingParams::greedy(),
        SamplingParams {
            repeat_penalty: 1.1,
            ..SamplingParams::default()
        },
        SamplingParams {
            top_k: 0,
            ..SamplingParams::default()
        },
        SamplingParams {
            top_k: 0,
            min_p: 0.0,
            top_p: 0.9,
            ..SamplingParams::default()
        },
        pure_temperature(1.0, 3),
    ];
    for params in configs {
        let mut s = Sampler::new(params.clone());
        // Warm-up.
        let first = s.sample(&rows[0], &history);
        assert!((first as usize) < VOCAB);
        let mut tokens = Vec::with_capacity(16);
        let mut allocated = 0;
        let started = std::time::Instant::now();
        for row in rows.iter().chain(std::iter::once(&flat)).cycle().take(8) {
            let before = allocations();
            let t = s.sample(row, &history);
            allocated += allocations() - before;
            tokens.push(t);
        }
        let elapsed = started.elapsed();
        assert_eq!(allocated, 0, "{params:?} allocated {allocated} times");
        assert!(tokens.iter().all(|&t| (t as usize) < VOCAB));
        // Informational only (no timing assertion): run with --nocapture to see it.
        println!("{params:?}: {:?} per call", elapsed / 8);
    }
}

//! Token sampling on the CPU: picks the next token id from one row of logits.
//!
//! The semantics and flag names follow llama.cpp's default sampler chain
//! (`common/sampling.cpp`, `src/llama-sampling.cpp`), restricted to the stages Voyager supports:
//!
//! 1. **repetition penalty** (`--repeat-penalty`, `--repeat-last-n`): every *distinct* token among
//!    the last `repeat_last_n` tokens of the history has its logit divided by the penalty when
//!    positive and multiplied by it otherwise (applied once per token, however often it occurs);
//!    then, as llama.cpp's `penalty_freq`/`penalty_present` and OpenAI's `frequency_penalty`/
//!    `presence_penalty`, each such token's logit is lowered by `frequency_penalty` times its
//!    count in that window plus `presence_penalty` once;
//! 2. if `temperature <= 0`: **greedy** — the argmax, ties going to the lowest id; the RNG is not
//!    touched. Otherwise:
//! 3. **top-k** (`--top-k`, 0 = off): keep the `k` highest logits;
//! 4. **top-p** (`--top-p`, 1 = off): with probabilities `softmax(logits)` over what top-k left
//!    (temperature is *not* applied yet, as in llama.cpp), keep the smallest set of most likely
//!    tokens whose cumulative probability reaches `top_p` (at least one token);
//! 5. **min-p** (`--min-p`, 0 = off): keep the tokens with `p >= min_p * p_max`;
//! 6. **temperature** (`--temp`): divide the surviving logits by it, softmax, and draw one token
//!    with the sampler's seeded RNG.
//!
//! llama.cpp's other default stages (DRY, top-n-sigma, typical-p, XTC) are all off by default and
//! are not implemented.
//!
//! Ordering of equal logits is always "lower id first", so results do not depend on the order in
//! which the selection algorithms happen to leave the candidates.
//!
//! # Efficiency
//! The sampler keeps its candidate and history buffers between calls, so after the first call on a
//! given vocabulary size (and history window) [`Sampler::sample`] does not allocate. For a
//! 262144-token vocabulary:
//! - top-k uses a partial selection (`select_nth_unstable_by`, O(n)), then only the `k` survivors
//!   are ever sorted;
//! - without top-k, min-p is applied first as an unsorted O(n) threshold filter (top-p and min-p
//!   each keep a prefix of the same ranking, so the order in which they are applied does not change
//!   the result, provided top-p's probabilities are normalized over the set *before* min-p, which
//!   they are), and top-p sorts only as much of the ranking as its nucleus needs, in growing chunks
//!   selected with `select_nth_unstable_by`.
//!
//! # Robustness
//! NaN logits are treated as `-inf`. If every candidate is `-inf`, the lowest id is returned (as
//! greedy would). [`Sampler::sample`] never panics on odd parameters (out-of-range values disable
//! or clamp the stage concerned); use [`SamplingParams::validate`] to reject them up front.

use std::cmp::Ordering;

/// The seed [`SamplingParams::default`] uses. llama.cpp's default seed (`LLAMA_DEFAULT_SEED`,
/// `0xFFFFFFFF`) means "pick a random one"; Voyager prefers reproducible runs by default, so the
/// default is this fixed value and callers wanting variety pass their own seed.
pub const DEFAULT_SEED: u64 = 0xC0FFEE;

/// Sampling parameters, named after llama.cpp's flags.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// `--temp`: logits are divided by it before the final softmax. `<= 0` means greedy (argmax,
    /// ties to the lowest id).
    pub temperature: f32,
    /// `--top-k`: keep only the `top_k` most likely tokens. 0 disables it.
    pub top_k: usize,
    /// `--top-p`: keep the smallest set of most likely tokens whose cumulative probability is at
    /// least `top_p`. 1.0 disables it.
    pub top_p: f32,
    /// `--min-p`: keep the tokens whose probability is at least `min_p` times the most likely
    /// token's. 0.0 disables it.
    pub min_p: f32,
    /// `--repeat-penalty`: divides positive (multiplies non-positive) logits of recently seen
    /// tokens. 1.0 disables it.
    pub repeat_penalty: f32,
    /// `--repeat-last-n`: how many of the most recent history tokens the penalty looks at.
    /// 0 disables the penalty; `usize::MAX` means the whole history (llama.cpp's `-1`).
    pub repeat_last_n: usize,
    /// Subtracted from a recent token's logit once per occurrence among the last
    /// `repeat_last_n` tokens (OpenAI's `frequency_penalty`, llama.cpp's `--frequency-penalty`).
    /// 0.0 disables it.
    pub frequency_penalty: f32,
    /// Subtracted once from the logit of every token among the last `repeat_last_n` (OpenAI's
    /// `presence_penalty`, llama.cpp's `--presence-penalty`). 0.0 disables it.
    pub presence_penalty: f32,
    /// Seed of the sampler's RNG. The same seed and the same sequence of logits give the same
    /// tokens.
    pub seed: u64,
}

impl Default for SamplingParams {
    /// llama.cpp's defaults (`common_params_sampling`): `temp 0.8`, `top_k 40`, `top_p 0.95`,
    /// `min_p 0.05`, `repeat_penalty 1.0` (off), `repeat_last_n 64`; the seed is the fixed
    /// [`DEFAULT_SEED`] rather than llama.cpp's "random".
    fn default() -> Self {
        Self {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            seed: DEFAULT_SEED,
        }
    }
}

impl SamplingParams {
    /// Greedy decoding: temperature 0 (argmax), everything else at its default (and so ignored,
    /// except the repetition penalty, which is off by default).
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            ..Self::default()
        }
    }

    /// Checks the parameters, returning a one-line message for the first bad one.
    pub fn validate(&self) -> Result<(), String> {
        // Written as `!(x op y)` so that NaN fails each check.
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(format!(
                "temperature must be a finite number >= 0 (0 = greedy), got {}",
                self.temperature
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(format!(
                "top_p must be in (0, 1] (1 = disabled), got {}",
                self.top_p
            ));
        }
        if !(self.min_p >= 0.0 && self.min_p <= 1.0) {
            return Err(format!(
                "min_p must be in [0, 1] (0 = disabled), got {}",
                self.min_p
            ));
        }
        if !(self.repeat_penalty > 0.0 && self.repeat_penalty.is_finite()) {
            return Err(format!(
                "repeat_penalty must be a finite number > 0 (1 = disabled), got {}",
                self.repeat_penalty
            ));
        }
        for (name, v) in [
            ("frequency_penalty", self.frequency_penalty),
            ("presence_penalty", self.presence_penalty),
        ] {
            if !v.is_finite() {
                return Err(format!(
                    "{name} must be a finite number (0 = disabled), got {v}"
                ));
            }
        }
        Ok(())
    }
}

/// One entry of the distribution the sampler draws from (see [`Sampler::distribution`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Token id (index into the logits row).
    pub id: u32,
    /// The logit after the repetition penalty (NaN replaced by `-inf`), before temperature.
    pub logit: f32,
    /// Probability. Inside the sampler this holds unnormalized weights until
    /// [`Sampler::distribution`] normalizes it.
    pub p: f32,
}

/// Ranking order: higher logit first, then lower id. A total order because NaN never gets in.
fn by_rank(a: &Candidate, b: &Candidate) -> Ordering {
    b.logit
        .partial_cmp(&a.logit)
        .unwrap_or(Ordering::Equal)
        .then(a.id.cmp(&b.id))
}

/// `exp((logit - max) / temp)`, the softmax numerator relative to the maximum logit; exact 1 for
/// the maximum itself so that `+inf` and `-inf` maxima do not produce NaN.
#[inline]
fn weight(logit: f32, max: f32, temp: f32) -> f32 {
    if logit == max {
        1.0
    } else {
        ((logit - max) / temp).exp()
    }
}

/// xoshiro256** (Blackman & Vigna, 2018), seeded by expanding the 64-bit seed with splitmix64 as
/// its authors recommend. 256 bits of state, period 2^256 - 1, passes BigCrush; more than enough
/// for sampling, and small enough to write by hand.
#[derive(Debug, Clone)]
struct Xoshiro256 {
    s: [u64; 4],
}

/// One step of splitmix64 (Steele, Lea & Flood), used only to seed xoshiro.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Xoshiro256 {
    fn new(seed: u64) -> Self {
        let mut sm = seed;
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        // splitmix64 is a bijection of its counter, so four consecutive outputs are never all
        // zero (the one state xoshiro must avoid).
        Self { s }
    }

    fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// The token sampler. Owns its RNG and scratch buffers; one per generation stream.
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplingParams,
    rng: Xoshiro256,
    /// All candidates, then the survivors of each stage (a prefix, by truncation).
    cands: Vec<Candidate>,
    /// The penalty window, sorted and deduplicated.
    window: Vec<u32>,
}

/// How many top candidates top-p sorts first; it grows 4x each time the nucleus is larger.
const TOP_P_FIRST_CHUNK: usize = 256;

impl Sampler {
    /// A sampler with the RNG seeded from `params.seed`. Parameters are not validated here (see
    /// [`SamplingParams::validate`]).
    pub fn new(params: SamplingParams) -> Self {
        let rng = Xoshiro256::new(params.seed);
        Self {
            params,
            rng,
            cands: Vec::new(),
            window: Vec::new(),
        }
    }

    /// The parameters this sampler was built with.
    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// Picks the next token from `logits` (one vocab row), given the recent token history for the
    /// penalty (ids outside the vocabulary are ignored).
    ///
    /// A stochastic call (temperature > 0) consumes exactly one RNG draw, whatever the number of
    /// surviving candidates; a greedy call consumes none.
    ///
    /// # Panics
    /// If `logits` is empty or longer than `u32::MAX`.
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        self.load(logits, history);
        if !self.is_stochastic() {
            return self.cands[self.argmax()].id;
        }
        let total = self.filter();
        let target = self.rng.next_f64() * total;
        let mut cum = 0.0f64;
        let mut last_positive = 0;
        for (i, c) in self.cands.iter().enumerate() {
            if c.p > 0.0 {
                cum += f64::from(c.p);
                last_positive = i;
                if cum > target {
                    return c.id;
                }
            }
        }
        // Only reachable through rounding (target == total): the last token with any weight.
        self.cands[last_positive].id
    }

    /// The distribution [`Sampler::sample`] would draw from for these inputs: the surviving
    /// candidates with normalized probabilities, in no particular order. For greedy parameters it
    /// is the argmax alone, with `p == 1`. Does not touch the RNG. Meant for tests, logprobs and
    /// debugging; it shares `sample`'s buffers, so it does not allocate either after warm-up.
    ///
    /// # Panics
    /// As [`Sampler::sample`].
    pub fn distribution(&mut self, logits: &[f32], history: &[u32]) -> &[Candidate] {
        self.load(logits, history);
        if !self.is_stochastic() {
            let best = self.argmax();
            self.cands.swap(0, best);
            self.cands.truncate(1);
            self.cands[0].p = 1.0;
        } else {
            let total = self.filter();
            for c in &mut self.cands {
                c.p = (f64::from(c.p) / total) as f32;
            }
        }
        &self.cands
    }

    /// Whether sampling draws from a distribution (temperature > 0) rather than taking the
    /// argmax. False for NaN temperatures too.
    fn is_stochastic(&self) -> bool {
        self.params.temperature > 0.0
    }

    /// Fills `cands` from the logits (NaN -> -inf) and applies the repetition penalty.
    fn load(&mut self, logits: &[f32], history: &[u32]) {
        assert!(!logits.is_empty(), "Sampler: empty logits row");
        assert!(
            u32::try_from(logits.len()).is_ok(),
            "Sampler: vocabulary larger than u32::MAX"
        );
        self.cands.clear();
        self.cands
            .extend(logits.iter().enumerate().map(|(i, &l)| Candidate {
                id: i as u32,
                logit: if l.is_nan() { f32::NEG_INFINITY } else { l },
                p: 0.0,
            }));

        let penalty = self.params.repeat_penalty;
        let (freq, present) = (self.params.frequency_penalty, self.params.presence_penalty);
        let n = self.params.repeat_last_n;
        let repeat = penalty != 1.0 && penalty > 0.0 && penalty.is_finite();
        let additive = (freq != 0.0 && freq.is_finite()) || (present != 0.0 && present.is_finite());
        if n == 0 || history.is_empty() || !(repeat || additive) {
            return;
        }
        let recent = &history[history.len().saturating_sub(n)..];
        self.window.clear();
        self.window.extend_from_slice(recent);
        self.window.sort_unstable();
        let freq = if freq.is_finite() { freq } else { 0.0 };
        let present = if present.is_finite() { present } else { 0.0 };
        for run in self.window.chunk_by(|a, b| a == b) {
            // Candidates are still indexed by id here.
            let Some(c) = self.cands.get_mut(run[0] as usize) else {
                continue;
            };
            if repeat {
                c.logit = if c.logit > 0.0 {
                    c.logit / penalty
                } else {
                    c.logit * penalty
                };
            }
            c.logit -= run.len() as f32 * freq + present;
        }
    }

    /// Index in `cands` of the highest logit, the first (lowest id) on ties; 0 if all are -inf.
    fn argmax(&self) -> usize {
        let mut best = 0;
        for (i, c) in self.cands.iter().enumerate().skip(1) {
            if c.logit > self.cands[best].logit {
                best = i;
            }
        }
        best
    }

    /// Runs top-k, top-p, min-p and temperature on `cands` (already loaded and penalized), leaving
    /// the survivors with their unnormalized weights in `p`; returns the sum of the weights (> 0).
    fn filter(&mut self) -> f64 {
        let params = &self.params;
        let cands = &mut self.cands;

        // Top-k.
        let k = params.top_k;
        if k > 0 && k < cands.len() {
            cands.select_nth_unstable_by(k - 1, by_rank);
            cands.truncate(k);
        }

        let max = cands.iter().fold(
            f32::NEG_INFINITY,
            |m, c| if c.logit > m { c.logit } else { m },
        );
        if max == f32::NEG_INFINITY {
            // Nothing has any probability: fall back to the lowest id, as greedy would.
            let lowest = (0..cands.len()).min_by_key(|&i| cands[i].id).unwrap_or(0);
            cands.swap(0, lowest);
            cands.truncate(1);
            cands[0].p = 1.0;
            return 1.0;
        }

        let top_p_on = params.top_p > 0.0 && params.top_p < 1.0;
        let min_p_on = params.min_p > 0.0;

        // Top-p's normalizer, over the set top-k left (before min-p removes anything).
        let z = if top_p_on {
            cands
                .iter()
                .map(|c| f64::from(weight(c.logit, max, 1.0)))
                .sum::<f64>()
        } else {
            0.0
        };

        // Min-p as an unsorted threshold on logits: p_i >= min_p * p_max <=> l_i >= max + ln(min_p).
        // The maximum always survives (min_p is clamped to 1).
        if min_p_on {
            let threshold = max + params.min_p.min(1.0).ln();
            cands.retain(|c| c.logit >= threshold);
        }

        // Top-p: the shortest prefix of the ranking whose mass reaches top_p * z.
        if top_p_on {
            let keep = nucleus_len(cands, max, f64::from(params.top_p) * z);
            cands.truncate(keep);
        }

        // Temperature and softmax numerators (the maximum survived every stage).
        let temp = params.temperature;
        let mut total = 0.0f64;
        for c in cands.iter_mut() {
            c.p = weight(c.logit, max, temp);
            total += f64::from(c.p);
        }
        total
    }
}

/// Sorts `cands` by rank as far as needed and returns the length of the shortest prefix whose
/// weights `exp(l - max)` add up to at least `target` (at least 1; all of them if never reached).
/// Sorting goes in chunks (256, then 4x larger each time) chosen by partial selection, so a small
/// nucleus in a huge vocabulary costs O(n) rather than O(n log n).
fn nucleus_len(cands: &mut [Candidate], max: f32, target: f64) -> usize {
    let n = cands.len();
    let mut cum = 0.0f64;
    let mut done = 0;
    let mut chunk = TOP_P_FIRST_CHUNK;
    while done < n {
        let end = n.min(done + chunk);
        let rest = &mut cands[done..];
        if end < n {
            rest.select_nth_unstable_by(end - done - 1, by_rank);
        }
        rest[..end - done].sort_unstable_by(by_rank);
        for (i, c) in cands[done..end].iter().enumerate() {
            cum += f64::from(weight(c.logit, max, 1.0));
            if cum >= target {
                return done + i + 1;
            }
        }
        done = end;
        chunk = chunk.saturating_mul(4);
    }
    n.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_and_xoshiro_reference_values() {
        // Reference values from an independent Python transcription of the published C code
        // (splitmix64.c and xoshiro256starstar.c by Vigna), seed 0.
        let mut sm = 0u64;
        assert_eq!(splitmix64(&mut sm), 0xE220_A839_7B1D_CDAF);
        let mut rng = Xoshiro256::new(0);
        let got: Vec<u64> = (0..3).map(|_| rng.next_u64()).collect();
        assert_eq!(got, XOSHIRO_SEED0_FIRST3);
    }

    const XOSHIRO_SEED0_FIRST3: [u64; 3] = [
        0x99EC_5F36_CB75_F2B4,
        0xBF6E_1F78_4956_452A,
        0x1A5F_849D_4933_E6E0,
    ];

    #[test]
    fn next_f64_is_in_unit_interval() {
        let mut rng = Xoshiro256::new(42);
        let mut sum = 0.0;
        for _ in 0..10_000 {
            let u = rng.next_f64();
            assert!((0.0..1.0).contains(&u));
            sum += u;
        }
        let mean = sum / 10_000.0;
        // Standard error of the mean is 1/sqrt(12 * 10000) ~ 0.0029; allow ~5 sigma.
        assert!((mean - 0.5).abs() < 0.015, "mean {mean}");
    }

    #[test]
    fn weight_handles_infinities() {
        assert_eq!(weight(f32::INFINITY, f32::INFINITY, 0.5), 1.0);
        assert_eq!(weight(3.0, f32::INFINITY, 0.5), 0.0);
        assert_eq!(weight(f32::NEG_INFINITY, 2.0, 1.0), 0.0);
        assert!((weight(1.0, 2.0, 0.5) - (-2.0f32).exp()).abs() < 1e-7);
    }

    fn cands_from(logits: &[f32]) -> Vec<Candidate> {
        logits
            .iter()
            .enumerate()
            .map(|(i, &l)| Candidate {
                id: i as u32,
                logit: l,
                p: 0.0,
            })
            .collect()
    }

    #[test]
    fn nucleus_len_crosses_chunks() {
        // 2000 equal logits: every weight is 1, so a target of 700.5 needs 701 tokens, which takes
        // the 256 and 1024 chunks.
        let mut c = cands_from(&vec![0.5; 2000]);
        assert_eq!(nucleus_len(&mut c, 0.5, 700.5), 701);
        // Ties rank by id, so the prefix is ids 0..701 in order.
        assert!(c[..701].iter().enumerate().all(|(i, c)| c.id == i as u32));
        // Unreachable target keeps everything.
        let mut c = cands_from(&[1.0, 0.0, -1.0]);
        assert_eq!(nucleus_len(&mut c, 1.0, 1e9), 3);
        // Tiny target keeps one.
        let mut c = cands_from(&[0.0, 1.0, -1.0]);
        assert_eq!(nucleus_len(&mut c, 1.0, 1e-9), 1);
        assert_eq!(c[0].id, 1);
    }

    #[test]
    fn by_rank_orders_logit_desc_then_id_asc() {
        let mut c = cands_from(&[1.0, 2.0, 1.0, f32::NEG_INFINITY, 2.0]);
        c.sort_unstable_by(by_rank);
        let ids: Vec<u32> = c.iter().map(|c| c.id).collect();
        assert_eq!(ids, vec![1, 4, 0, 2, 3]);
    }
}

//! The kernels that read weights, on a real adapter against their CPU twins: matmul (decode
//! and prefill tilings, both strategies) and the embedding gather, for every weight type the
//! GPU reads, odd shapes, weights split over several chunks, and real tensors of both models.
//! Each bound is argued in `voyager_runtime::selfcheck::cases` (`matmul_bounds`,
//! `embedding_bounds`): from the summation order, not a loose constant.
//!
//! These tests need a GPU adapter and FAIL without one (CI installs Mesa's lavapipe).

mod common;

use common::{check_all, check_both_strategies, context, judged};
use voyager_runtime::gguf::GgmlType;
use voyager_runtime::gpu::kernels::{Kernels, Strategy};
use voyager_runtime::gpu::weights::GpuWeight;
use voyager_runtime::quant::random::random_tensor;
use voyager_runtime::rng::XorShift;
use voyager_runtime::selfcheck::cases::{self, tensor_info as info, Case, Tolerance};
use voyager_runtime::selfcheck::Harness;

fn gpu_types() -> Vec<GgmlType> {
    GgmlType::all().filter(|t| t.runs_on_gpu()).collect()
}

#[test]
fn matmul_matches_cpu_for_every_type() {
    let ctx = context();
    check_both_strategies(&ctx, |strategy| {
        let mut rng = XorShift::new(0x9e37_79b9_7f4a_7c15);
        let mut table = Vec::new();
        for ty in gpu_types() {
            let block = ty.block_len() as usize;
            // Float rows of odd length exercise the k % 8 tail; quantized rows are whole
            // blocks.
            let (one, several) = if block == 1 {
                (5, 203)
            } else {
                (block, 5 * block)
            };
            for (shape, chunks) in [
                ((one, 1, 1), None),
                ((one, 3, 2), None),
                ((several, 37, 1), None),
                ((several, 37, 7), None),
                ((one, 129, 1), Some(10)),
                ((several, 129, 67), Some(50)),
                ((2 * block.max(8), 130, 9), Some(1)),
            ] {
                table.push(cases::matmul(&mut rng, ty, shape, chunks, strategy).unwrap());
            }
        }
        table
    });
}

/// Every build of the cooperative matmul gives the CPU's products within the same bound: both
/// ways of adding partial sums (subgroup shuffles where the adapter has subgroups, the
/// workgroup-memory tree everywhere) and every decode rows-per-workgroup choice; decode and
/// prefill, whole and chunked weights, a K-quant, a legacy type and f32.
#[test]
fn every_cooperative_build_matches_cpu() {
    use voyager_runtime::gpu::kernels::matmul::{MatmulKernel, Reduction, DECODE_ROWS_CHOICES};
    let ctx = context();
    let mut reductions = vec![Reduction::Tree];
    if Reduction::for_device(&ctx) == Reduction::Subgroup {
        reductions.push(Reduction::Subgroup);
    } else {
        eprintln!("this adapter has no usable subgroups: the tree alone is checked");
    }
    let builds = reductions
        .iter()
        .flat_map(|&r| DECODE_ROWS_CHOICES.map(|rows| (r, rows)));
    for (reduction, rows) in builds {
        let mut kernels = Kernels::with_strategy(&ctx, Strategy::Cooperative).unwrap();
        kernels.matmul =
            MatmulKernel::with_options(&ctx, Strategy::Cooperative, reduction, rows).unwrap();
        assert_eq!(kernels.matmul.reduction(), reduction);
        assert_eq!(kernels.matmul.decode_rows(), rows);
        let mut rng = XorShift::new(0x5eed_5e6d);
        let mut table = Vec::new();
        for ty in [GgmlType::Q4_K, GgmlType::Q4_0, GgmlType::F32] {
            let block = (ty.block_len() as usize).max(8);
            for (shape, chunks) in [
                ((3 * block + (block == 8) as usize, 37, 1), None),
                ((2 * block, 65, 9), Some(20)),
            ] {
                table.push(
                    cases::matmul(&mut rng, ty, shape, chunks, Strategy::Cooperative).unwrap(),
                );
            }
        }
        check_all(&ctx, &kernels, &table);
    }
}

#[test]
fn embedding_matches_cpu_for_every_type() {
    let ctx = context();
    let kernels = Kernels::new(&ctx).unwrap();
    let mut rng = XorShift::new(0x1234_5678_9abc_def1);
    let mut table = Vec::new();
    for ty in gpu_types() {
        let block = ty.block_len() as usize;
        for (k, n, chunk_rows) in [
            (if block == 1 { 3 } else { block }, 5, None),
            (if block == 1 { 2053 } else { 9 * block }, 37, Some(4)),
        ] {
            // Repeated ids, the first and last rows, and ids past the end (left untouched).
            let mut ids: Vec<u32> = (0..11).map(|_| rng.below(n as u64) as u32).collect();
            ids.extend([0, n as u32 - 1, ids[0], n as u32, u32::MAX]);
            for scale in [1.0f32, 25.298221] {
                table.push(
                    cases::embedding(&mut rng, ty, (k, n), ids.clone(), scale, chunk_rows).unwrap(),
                );
            }
        }
    }
    check_all(&ctx, &kernels, &table);
}

#[test]
fn uploads_refuse_bad_weights() {
    let ctx = context();
    let q8 = vec![0u8; 34 * 4];
    // A type no kernel reads.
    let bad = info("q2k", GgmlType::Q2_K, 256, 1, 84);
    assert!(GpuWeight::upload(&ctx, &bad, &[0; 84]).is_err());
    // Byte size that does not match the shape or the tensor info.
    assert!(GpuWeight::upload(&ctx, &info("w", GgmlType::Q8_0, 64, 2, 136), &q8[..100]).is_err());
    assert!(GpuWeight::upload(&ctx, &info("w", GgmlType::Q8_0, 64, 2, 100), &q8).is_err());
    // Rows that are not whole blocks.
    assert!(GpuWeight::upload(&ctx, &info("w", GgmlType::Q8_0, 48, 2, 102), &q8[..102]).is_err());
    // A row larger than a chunk may be.
    let ok = info("w", GgmlType::Q8_0, 64, 2, 136);
    let err = GpuWeight::upload_with_limit(&ctx, &ok, &q8[..136], 64).unwrap_err();
    assert!(err.to_string().contains("one row"), "{err}");
    let w = GpuWeight::upload_with_limit(&ctx, &ok, &q8[..136], 68).unwrap();
    assert_eq!(
        (w.rows(), w.cols(), w.chunks().len(), w.n_bytes()),
        (2, 64, 2, 136)
    );
    // Odd-sized rows are padded to whole words.
    assert_eq!(w.chunks()[0].buffer.size(), 68);
    let q40 = info("w", GgmlType::Q4_0, 32, 3, 54);
    let w = GpuWeight::upload_with_limit(&ctx, &q40, &[0; 54], 20).unwrap();
    assert_eq!(w.chunks().len(), 3);
    assert!(w
        .chunks()
        .iter()
        .all(|c| c.buffer.size() == 20 && c.n_bytes == 18));
}

/// Real tensors of the real models (pulled through the catalog when missing), with the
/// device's strategy.
#[test]
fn matmul_matches_cpu_on_real_model_tensors() {
    let ctx = context();
    let kernels = Kernels::new(&ctx).unwrap();
    let strategy = kernels.strategy();
    let mut rng = XorShift::new(42);
    let mut table = Vec::new();
    for (model, name) in [
        ("smollm2-135m", "blk.0.ffn_down.weight"),
        ("smollm2-135m", "blk.0.attn_norm.weight"),
        ("gemma3-270m", "blk.0.attn_q.weight"),
        ("gemma3-270m", "blk.0.attn_output.weight"),
        ("gemma3-270m", "blk.0.ffn_down.weight"),
        ("gemma3-270m", "blk.0.attn_v.weight"),
    ] {
        let file = common::model(model);
        let t = file.tensor(name).unwrap().clone();
        let bytes = file.tensor_data(&t).to_vec();
        let k = t.dims[0] as usize;
        let n = t.dims.iter().skip(1).product::<u64>() as usize;
        for n_tokens in [1usize, 5] {
            let x = rng.vec(k * n_tokens, 1.0);
            let what = format!("{name} ({}, {k} x {n}) tokens={n_tokens}", t.ggml_type);
            table.push(
                cases::matmul_of(
                    what,
                    t.ggml_type,
                    bytes.clone(),
                    (k, n),
                    x,
                    n_tokens,
                    None,
                    strategy,
                )
                .unwrap(),
            );
        }
    }
    check_all(&ctx, &kernels, &table);
}

/// Gemma 3's 262144 x 640 Q8_0 token embedding (178 MB, more than lavapipe's 128 MiB binding),
/// uploaded once in several chunks: looked up across the chunk boundary (the embedding), and
/// used as the tied logits matmul, checked on rows around each boundary and the ends (the CPU
/// reference of all 262144 rows is too slow).
#[test]
fn a_chunked_real_weight_serves_the_embedding_and_the_logits() {
    let file = common::model("gemma3-270m");
    let ctx = context();
    let kernels = Kernels::new(&ctx).unwrap();
    let h = Harness::new(&ctx, &kernels);
    let t = file.tensor("token_embd.weight").unwrap().clone();
    let bytes = file.tensor_data(&t);
    let weight = GpuWeight::upload(&ctx, &t, bytes).unwrap();
    let max_chunk = ctx
        .limits()
        .max_storage_buffer_binding_size
        .min(ctx.limits().max_buffer_size);
    assert_eq!(weight.n_bytes(), t.n_bytes);
    assert!(weight.chunks().iter().all(|c| c.buffer.size() <= max_chunk));
    if t.n_bytes > max_chunk {
        assert!(weight.chunks().len() > 1);
    }
    let (k, n) = (weight.cols() as usize, weight.rows() as usize);
    let row_bytes = weight.row_bytes() as usize;
    let ty = t.ggml_type;

    // The embedding, across the last boundary.
    let boundary = weight.chunks().last().unwrap().first_row;
    let ids = vec![
        2,
        0,
        boundary - 1,
        boundary,
        106,
        n as u32 - 1,
        262_000,
        1000,
    ];
    let scale = (k as f32).sqrt();
    let want = voyager_runtime::gpu::kernels::embedding::embedding_ref(
        ty,
        bytes,
        k,
        n,
        &ids,
        scale,
        f32::NAN,
    )
    .unwrap();
    let got = h.embedding(&weight, &ids, scale).unwrap();
    assert_eq!(got.len(), want.len());
    // Q8_0 has no fused add: bit-exact.
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(
            g.to_bits(),
            w.to_bits(),
            "embedding element {i}: {g} vs {w}"
        );
    }

    // The logits, one token, checked row by row against the bound of a 1 x k matmul.
    let x = XorShift::new(7).vec(k, 1.0);
    let logits = h.matmul(&weight, &x, 1).unwrap();
    let mut rows: Vec<usize> = vec![0, 1, n - 2, n - 1];
    for c in weight.chunks().iter().skip(1) {
        let b = c.first_row as usize;
        rows.extend(b - 3..b + 3);
    }
    for r in rows {
        let wb = bytes[r * row_bytes..][..row_bytes].to_vec();
        let row = cases::matmul_of(
            format!("logits row {r}"),
            ty,
            wb,
            (k, 1),
            x.clone(),
            1,
            None,
            kernels.strategy(),
        )
        .unwrap();
        // The row's case knows its expected value and bound: judge what the chunked matmul
        // produced for that row.
        judged(&row, &[logits[r]]);
    }
}

/// The engine's usage: bind once for `max_tokens`, then per step write the `Step` uniform and
/// record into one encoder; a smaller batch leaves the rows of later tokens untouched, and a
/// larger one is refused.
#[test]
fn one_binding_serves_steps_of_any_size() {
    let ctx = context();
    for strategy in Strategy::ALL {
        let kernels = Kernels::with_strategy(&ctx, strategy).unwrap();
        let h = Harness::new(&ctx, &kernels);
        let mut rng = XorShift::new(99);
        let (ty, k, n, max_tokens) = (GgmlType::Q4_K, 512, 45, 16usize);
        let bytes = random_tensor(ty, k * n, &mut rng).unwrap();
        let ti = info("w", ty, k, n, bytes.len());
        let weight = GpuWeight::upload_with_limit(&ctx, &ti, &bytes, 20 * 288).unwrap();
        assert_eq!(weight.chunks().len(), 3);
        let x = rng.vec(k * max_tokens, 1.0);
        let gx = h.input("x", &x).unwrap();
        let gy = h.output("y", n * max_tokens).unwrap();
        let step = h.step(0, 0).unwrap();
        let kernel = &kernels.matmul;
        let binding = kernel
            .bind(&ctx, &weight, &gx, &gy, &step, max_tokens as u32)
            .unwrap();
        let nan = vec![f32::NAN; n * max_tokens];
        for n_tokens in [1usize, 9, 16, 2] {
            ctx.queue().write_buffer(&gy, 0, bytemuck::cast_slice(&nan));
            let t = n_tokens as u32;
            ctx.queue()
                .write_buffer(&step, 0, bytemuck::cast_slice(&[t, 0, t, 0]));
            h.submit("step", |pass| kernel.encode(pass, &binding, t))
                .unwrap();
            let y = h.read(&gy, n * max_tokens).unwrap();
            let case = cases::matmul_of(
                format!("{strategy:?} step of {n_tokens}"),
                ty,
                bytes.clone(),
                (k, n),
                x[..k * n_tokens].to_vec(),
                n_tokens,
                None,
                strategy,
            )
            .unwrap();
            judged(&case, &y[..n * n_tokens]);
            assert!(
                y[n * n_tokens..].iter().all(|v| v.is_nan()),
                "step of {n_tokens}: rows of later tokens were written"
            );
        }
        let err = h.submit("too many", |pass| {
            kernel.encode(pass, &binding, max_tokens as u32 + 1)
        });
        assert!(err.is_err(), "a step larger than the binding was recorded");
    }
}

/// The embedding bound once, new ids written each step on the GPU only; tokens past
/// `n_tokens` are left untouched.
#[test]
fn one_embedding_binding_serves_steps_with_new_ids() {
    let ctx = context();
    let kernels = Kernels::new(&ctx).unwrap();
    let h = Harness::new(&ctx, &kernels);
    let mut rng = XorShift::new(5);
    let (ty, k, n, max_tokens) = (GgmlType::Q6_K, 256, 30, 8usize);
    let bytes = random_tensor(ty, k * n, &mut rng).unwrap();
    let ti = info("token_embd", ty, k, n, bytes.len());
    let weight = GpuWeight::upload_with_limit(&ctx, &ti, &bytes, 7 * 210 + 2).unwrap();
    assert_eq!(weight.chunks().len(), 5);
    let ids = h.input_u32("ids", &[0; 8]).unwrap();
    let out = h.output("out", k * max_tokens).unwrap();
    let step = h.step(0, 0).unwrap();
    let kernel = &kernels.embedding;
    let binding = kernel
        .bind(&ctx, &weight, &ids, &out, &step, 2.0, max_tokens as u32)
        .unwrap();
    let nan = vec![f32::NAN; k * max_tokens];
    for batch in [vec![29u32, 0, 7], vec![1, 2, 3, 4, 5, 6, 28, 14], vec![13]] {
        let m = batch.len() as u32;
        ctx.queue()
            .write_buffer(&out, 0, bytemuck::cast_slice(&nan));
        ctx.queue()
            .write_buffer(&ids, 0, bytemuck::cast_slice(&batch));
        ctx.queue()
            .write_buffer(&step, 0, bytemuck::cast_slice(&[m, 0, m, 0]));
        h.submit("step", |pass| kernel.encode(pass, &binding, m))
            .unwrap();
        let got = h.read(&out, k * max_tokens).unwrap();
        let mut want = voyager_runtime::gpu::kernels::embedding::embedding_ref(
            ty,
            &bytes,
            k,
            n,
            &batch,
            2.0,
            f32::NAN,
        )
        .unwrap();
        want.resize(k * max_tokens, f32::NAN);
        // Q6_K has no fused add: bit-exact, and NaN where nothing may be written.
        let bounds = vec![0.0; want.len()];
        let case = Case::new(
            format!("batch {batch:?}"),
            want,
            Tolerance::PerElement(bounds),
            |_| {
                Err(voyager_runtime::Error::InvalidArgument(
                    "judged only".into(),
                ))
            },
        );
        judged(&case, &got);
    }
}

//! Every WGSL shader, validated offline for every backend we ship on.
//!
//! For each entry of `gpu::shaders::SHADERS`: naga parses it, validates it with the
//! capabilities the kernels may use (f16, subgroups), and writes SPIR-V 1.3 (Vulkan),
//! MSL 2.4 (Metal) and HLSL shader model 6.2 (DX12). The SPIR-V is then checked by
//! `spirv-val --target-env vulkan1.1`. A missing `spirv-val` fails the test unless
//! `VOYAGER_SKIP_SPIRV_VAL=1` (install it with `apt-get install spirv-tools`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use naga::back::{hlsl, msl, spv};
use naga::valid::{Capabilities, ValidationFlags, Validator};
use voyager_runtime::gpu::shaders::{
    self, KV_SNIPPETS, MATMUL_SNIPPETS, QUANT_SNIPPETS, SHADERS, TEMPLATES,
};

fn shaders_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shaders")
}

/// The naga capabilities matching the device features we request (SHADER_F16, SUBGROUP), plus
/// SHADER_FLOAT16_IN_FLOAT32 (`pack2x16float`/`unpack2x16float` on f32): wgpu grants it from
/// the downlevel flag SHADER_F16_IN_F32, which every Vulkan, Metal and DX12 adapter has (only
/// GLES 3.0 lacks it). The weight kernels read f16 scales with `unpack2x16float`.
fn capabilities() -> Capabilities {
    Capabilities::SHADER_FLOAT16
        | Capabilities::SHADER_FLOAT16_IN_FLOAT32
        | Capabilities::SUBGROUP
        | Capabilities::SUBGROUP_BARRIER
}

struct Outputs {
    spirv: Vec<u32>,
    msl: String,
    hlsl: String,
}

/// Parses, validates and translates `source` for all three backends.
fn translate(name: &str, source: &str) -> Outputs {
    let module = naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("{name}: WGSL parse error:\n{}", e.emit_to_string(source)));
    let info = Validator::new(ValidationFlags::all(), capabilities())
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name}: validation error:\n{}", e.emit_to_string(source)));
    assert!(
        !module.entry_points.is_empty(),
        "{name}: the shader has no entry point"
    );

    let spv_options = spv::Options {
        lang_version: (1, 3),
        ..Default::default()
    };
    let spirv = spv::write_vec(&module, &info, &spv_options, None)
        .unwrap_or_else(|e| panic!("{name}: SPIR-V: {e}"));
    assert!(!spirv.is_empty(), "{name}: empty SPIR-V");

    let msl_options = msl::Options {
        lang_version: (2, 4),
        ..Default::default()
    };
    let (msl, _) = msl::write_string(
        &module,
        &info,
        &msl_options,
        &msl::PipelineOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{name}: MSL: {e}"));
    assert!(!msl.trim().is_empty(), "{name}: empty MSL");

    let hlsl_options = hlsl::Options {
        shader_model: hlsl::ShaderModel::V6_2,
        ..Default::default()
    };
    let pipeline = hlsl::PipelineOptions::default();
    let mut hlsl = String::new();
    hlsl::Writer::new(&mut hlsl, &hlsl_options, &pipeline)
        .write(&module, &info, None)
        .unwrap_or_else(|e| panic!("{name}: HLSL: {e}"));
    assert!(!hlsl.trim().is_empty(), "{name}: empty HLSL");

    Outputs { spirv, msl, hlsl }
}

/// Runs `spirv-val` on the words, or says why it could not.
fn spirv_val(name: &str, words: &[u32]) -> Result<(), String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(format!("{name}.spv"));
    std::fs::write(&path, bytemuck::cast_slice::<u32, u8>(words)).expect("write SPIR-V");
    let output = match Command::new("spirv-val")
        .args(["--target-env", "vulkan1.1"])
        .arg(&path)
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if std::env::var("VOYAGER_SKIP_SPIRV_VAL").as_deref() == Ok("1") {
                eprintln!("{name}: spirv-val not found, skipped (VOYAGER_SKIP_SPIRV_VAL=1)");
                return Ok(());
            }
            panic!(
                "spirv-val not found: install spirv-tools (Debian/Ubuntu: apt-get install \
                 spirv-tools), or set VOYAGER_SKIP_SPIRV_VAL=1 to skip this check"
            );
        }
        Err(e) => panic!("cannot run spirv-val: {e}"),
    };
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

fn check(name: &str, source: &str) -> Outputs {
    let out = translate(name, source);
    if let Err(why) = spirv_val(name, &out.spirv) {
        panic!("{name}: spirv-val rejected the SPIR-V:\n{why}");
    }
    out
}

#[test]
fn every_shader_translates_for_every_backend() {
    assert!(!SHADERS.is_empty(), "the shader registry is empty");
    for (name, source) in SHADERS {
        let out = check(name, source);
        eprintln!(
            "{name}: SPIR-V {} words, MSL {} bytes, HLSL {} bytes",
            out.spirv.len(),
            out.msl.len(),
            out.hlsl.len()
        );
    }
}

#[test]
fn every_wgsl_file_is_registered() {
    let dir = shaders_dir();
    let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wgsl"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    // Standalone shaders and templates (assembled per weight type, validated as variants).
    let registered: BTreeSet<String> = SHADERS
        .iter()
        .chain(TEMPLATES)
        .map(|(n, _)| n.to_string())
        .collect();
    assert_eq!(
        registered.len(),
        SHADERS.len() + TEMPLATES.len(),
        "duplicate names in the registry"
    );
    let missing: Vec<_> = on_disk.difference(&registered).collect();
    assert!(
        missing.is_empty(),
        "shaders/ has WGSL files missing from gpu::shaders::SHADERS (so never validated): {missing:?}"
    );
    let stale: Vec<_> = registered.difference(&on_disk).collect();
    assert!(
        stale.is_empty(),
        "registered shaders without a file in shaders/: {stale:?}"
    );
    // The registered source is the file's content (include_str! of the same name).
    for (name, source) in SHADERS.iter().chain(TEMPLATES) {
        let file = std::fs::read_to_string(dir.join(format!("{name}.wgsl"))).unwrap();
        assert_eq!(
            &file, source,
            "{name}: registry source differs from shaders/{name}.wgsl"
        );
    }
}

/// The toolchain itself handles what later kernels will use: `enable f16;` and subgroup
/// reductions, through all three backends and spirv-val. Not a registered shader.
#[test]
fn f16_and_subgroup_features_translate() {
    let probe = r#"
enable f16;

@group(0) @binding(0) var<storage, read> src: array<f16>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(64)
fn probe(@builtin(global_invocation_id) gid: vec3<u32>,
         @builtin(subgroup_invocation_id) lane: u32) {
    let v = f32(src[gid.x]);
    let total = subgroupAdd(v);
    if (lane == 0u) {
        dst[gid.x] = total;
    }
}
"#;
    check("f16_subgroup_probe", probe);
}

/// Every assembled variant (`matmul_<type>`, `matvec_<type>`, `embedding_<type>`: a template
/// with its `shaders/quant/` snippet) translates for every backend.
#[test]
fn every_assembled_variant_translates_for_every_backend() {
    let variants = shaders::variants().unwrap_or_else(|e| panic!("assembling variants: {e}"));
    assert!(!variants.is_empty());
    for (name, source) in &variants {
        let out = check(name, source);
        eprintln!(
            "{name}: SPIR-V {} words, MSL {} bytes, HLSL {} bytes",
            out.spirv.len(),
            out.msl.len(),
            out.hlsl.len()
        );
    }
}

/// Every file in `shaders/quant/`, `shaders/kv/` and `shaders/matmul/` is registered with its content, and
/// included by at least one assembled variant (so validated through it).
#[test]
fn every_snippet_is_registered_and_used() {
    for (sub, registry) in [
        ("quant", QUANT_SNIPPETS),
        ("kv", KV_SNIPPETS),
        ("matmul", MATMUL_SNIPPETS),
    ] {
        check_snippets(sub, registry);
    }
}

fn check_snippets(sub: &str, registry: &[(&str, &str)]) {
    let dir = shaders_dir().join(sub);
    let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wgsl"))
        .map(|p| format!("{sub}/{}", p.file_name().unwrap().to_string_lossy()))
        .collect();
    let registered: BTreeSet<String> = registry.iter().map(|(p, _)| p.to_string()).collect();
    assert_eq!(registered.len(), registry.len(), "duplicate snippet paths");
    assert_eq!(
        on_disk, registered,
        "shaders/{sub}/ and its registry in gpu::shaders differ"
    );
    let variants = shaders::variants().unwrap();
    for (path, source) in registry {
        let file = std::fs::read_to_string(shaders_dir().join(path)).unwrap();
        assert_eq!(
            &file, source,
            "{path}: registry source differs from the file"
        );
        let marker = format!("// ---- begin {path}\n");
        assert!(
            variants.iter().any(|(_, s)| s.contains(&marker)),
            "{path} is included by no assembled variant, so never validated"
        );
    }
}

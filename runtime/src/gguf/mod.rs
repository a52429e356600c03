//! The GGUF model file: memory-mapped, validated, with zero-copy tensor views.
//!
//! Opening a file runs two steps, and nothing is trusted before the one ahead of it passed:
//! 1. the header reader (`header.rs`) walks the header over the mapped bytes, bounding every
//!    count and length by what is left of the file and checking strings are UTF-8 (no
//!    allocation on its say-so); scalars are decoded, arrays only located;
//! 2. [`GgufFile`] checks the layout: each tensor's byte size from its shape and type, its
//!    alignment, that it lies inside the file, and that names are unique.
//!
//! Tensor data is then a `&[u8]` slice of the map, and metadata arrays are read from it.

mod header;
mod metadata;
pub mod shapes;
pub mod synthetic;
pub mod writer;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;

pub use crate::quant::{file_type_name, GgmlType};
pub use metadata::Metadata;

use crate::error::{Error, Result};

/// Tensor data alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// One tensor's description; its bytes are read with [`GgufFile::tensor_data`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub ggml_type: GgmlType,
    /// Dimensions, innermost (row length) first, as GGUF stores them.
    pub dims: Vec<u64>,
    /// Absolute byte offset of the data in the file.
    pub offset: u64,
    /// Size of the data in bytes.
    pub n_bytes: u64,
}

impl TensorInfo {
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

/// The bytes of a file: a read-only map of it, or a buffer (tests and fuzzing).
pub(crate) enum Source {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl Source {
    fn bytes(&self) -> &[u8] {
        match self {
            Source::Mapped(m) => m,
            Source::Owned(v) => v,
        }
    }
}

/// An opened, validated GGUF file.
pub struct GgufFile {
    source: Arc<Source>,
    path: Option<PathBuf>,
    version: u32,
    metadata: Metadata,
    tensors: Vec<TensorInfo>,
    by_name: HashMap<String, usize>,
    alignment: u64,
    data_offset: u64,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("tensors", &self.tensors.len())
            .finish_non_exhaustive()
    }
}

impl GgufFile {
    /// Maps and validates the file at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let open_err = |source| Error::Io {
            action: "open",
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(open_err)?;
        let meta = file.metadata().map_err(open_err)?;
        if meta.is_dir() {
            return Err(open_err(std::io::Error::other("is a directory")));
        }
        // SAFETY: the map is read-only. A file truncated or rewritten underneath a running
        // process is outside what any mmap-based reader can defend against; the loader copies
        // tensors to the GPU once, early.
        let map = unsafe { Mmap::map(&file) }.map_err(open_err)?;
        let mut f = Self::parse(Source::Mapped(map))?;
        f.path = Some(path.to_path_buf());
        Ok(f)
    }

    /// Validates a file held in memory (tests, fuzzing).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        Self::parse(Source::Owned(bytes))
    }

    fn parse(source: Source) -> Result<Self> {
        let header = header::read(source.bytes())?;
        let source = Arc::new(source);
        let file_size = source.bytes().len() as u64;
        let metadata = Metadata::new(Arc::clone(&source), header.kv);

        let alignment = match metadata.opt_u64("general.alignment")? {
            None => DEFAULT_ALIGNMENT,
            Some(a) if a.is_power_of_two() && a <= 1 << 20 => a,
            Some(a) => {
                return Err(Error::Malformed(format!(
                    "general.alignment {a} is not a power of two up to 1 MiB"
                )))
            }
        };
        let data_offset = header.header_end.next_multiple_of(alignment);
        if data_offset > file_size && !header.tensors.is_empty() {
            return Err(Error::Malformed(format!(
                "file ends at byte {file_size}, before the tensor data at {data_offset}"
            )));
        }

        let mut tensors = Vec::with_capacity(header.tensors.len());
        let mut by_name = HashMap::with_capacity(header.tensors.len());
        for t in header.tensors {
            let info = Self::check_tensor(t, alignment, data_offset, file_size)?;
            if by_name.insert(info.name.clone(), tensors.len()).is_some() {
                return Err(Error::Malformed(format!(
                    "tensor `{}` appears twice",
                    info.name
                )));
            }
            tensors.push(info);
        }

        Ok(Self {
            source,
            path: None,
            version: header.version,
            metadata,
            tensors,
            by_name,
            alignment,
            data_offset,
        })
    }

    fn check_tensor(
        t: header::RawTensor,
        alignment: u64,
        data_offset: u64,
        file_size: u64,
    ) -> Result<TensorInfo> {
        let name = &t.name;
        let ggml_type = t.ty;
        let dims = t.dims.clone();
        let row_len = dims[0];
        let n_rows: u64 = dims[1..].iter().product();
        let n_bytes = ggml_type
            .row_bytes(row_len)
            .and_then(|b| b.checked_mul(n_rows))
            .ok_or_else(|| {
                Error::Malformed(format!(
                    "tensor `{name}` has rows of {row_len} values, not a whole number of {ggml_type} blocks ({})",
                    ggml_type.block_len()
                ))
            })?;
        if t.offset % alignment != 0 {
            return Err(Error::Malformed(format!(
                "tensor `{name}` at offset {} is not aligned to {alignment} bytes",
                t.offset
            )));
        }
        let offset = data_offset.checked_add(t.offset);
        let end = offset.and_then(|o| o.checked_add(n_bytes));
        match (offset, end) {
            (Some(offset), Some(end)) if end <= file_size => Ok(TensorInfo {
                name: t.name.clone(),
                ggml_type,
                dims,
                offset,
                n_bytes,
            }),
            _ => Err(Error::Malformed(format!(
                "tensor `{name}` ({n_bytes} bytes at data offset {}) lies past the end of the file ({file_size} bytes)",
                t.offset
            ))),
        }
    }

    /// The path the file was opened from, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// `general.architecture`.
    pub fn architecture(&self) -> Result<&str> {
        self.metadata.str("general.architecture")
    }

    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    pub fn tensor(&self, name: &str) -> Result<&TensorInfo> {
        self.by_name
            .get(name)
            .map(|&i| &self.tensors[i])
            .ok_or_else(|| Error::MissingTensor(name.to_string()))
    }

    /// The tensor's bytes: a zero-copy view into the map.
    pub fn tensor_data(&self, t: &TensorInfo) -> &[u8] {
        // Bounds were checked when the file was opened.
        &self.source.bytes()[t.offset as usize..(t.offset + t.n_bytes) as usize]
    }

    /// Tells the OS it may drop the mapped pages of `t`'s data (after uploading it), so the
    /// file's pages do not stay resident beside their GPU copy. Reading the data again later
    /// still works: the pages are read back from the file.
    pub fn release_pages(&self, t: &TensorInfo) {
        self.release_range(t.offset as usize, t.n_bytes as usize);
    }

    /// [`GgufFile::release_pages`] for bytes `range` of `t`'s data only (one uploaded slice).
    pub fn release_tensor_range(&self, t: &TensorInfo, range: std::ops::Range<usize>) {
        self.release_range(t.offset as usize + range.start, range.len());
    }

    /// Drops the mapped pages of the header (metadata and tensor infos), once what is needed
    /// of them has been copied out (the vocabulary into the tokenizer). Metadata arrays can
    /// still be read: the pages come back from the file.
    pub fn release_header(&self) {
        self.release_range(0, self.data_offset.min(self.file_size()) as usize);
    }

    fn release_range(&self, offset: usize, len: usize) {
        if let Source::Mapped(m) = self.source.as_ref() {
            if len == 0 {
                return;
            }
            // SAFETY: the map is private and read-only, so MADV_DONTNEED only drops clean
            // pages that the kernel re-reads from the file on the next access; no slice into
            // the map can observe different contents.
            let r = unsafe {
                m.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, len)
            };
            if let Err(e) = r {
                log::debug!("madvise of {len} bytes at {offset}: {e}");
            }
        }
    }

    /// The header's bytes (metadata and tensor table, up to the tensor data): what identifies
    /// the model, without reading its weights.
    pub fn header_bytes(&self) -> &[u8] {
        let end = (self.data_offset.min(self.file_size())) as usize;
        &self.source.bytes()[..end]
    }

    /// Tensor data alignment in bytes.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Absolute offset of the tensor data section.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    pub fn file_size(&self) -> u64 {
        self.source.bytes().len() as u64
    }

    /// Total number of weights over all tensors.
    pub fn n_parameters(&self) -> u64 {
        self.tensors.iter().map(TensorInfo::n_elements).sum()
    }
}

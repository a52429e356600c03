//! A small GGUF writer: builds valid files for tests, the corrupt-file corpus and synthetic
//! benchmark models. It writes version 3, little-endian, with 32-byte alignment.

use crate::gguf::{GgmlType, DEFAULT_ALIGNMENT};

/// A metadata value to write.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(String),
    U64(u64),
    I64(i64),
    F64(f64),
    /// A homogeneous array; every element must be of one (non-array) kind.
    Array(Vec<Value>),
}

impl Value {
    fn type_id(&self) -> u32 {
        match self {
            Value::U8(_) => 0,
            Value::I8(_) => 1,
            Value::U16(_) => 2,
            Value::I16(_) => 3,
            Value::U32(_) => 4,
            Value::I32(_) => 5,
            Value::F32(_) => 6,
            Value::Bool(_) => 7,
            Value::Str(_) => 8,
            Value::Array(_) => 9,
            Value::U64(_) => 10,
            Value::I64(_) => 11,
            Value::F64(_) => 12,
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Value::U8(v) => out.push(*v),
            Value::I8(v) => out.extend(v.to_le_bytes()),
            Value::U16(v) => out.extend(v.to_le_bytes()),
            Value::I16(v) => out.extend(v.to_le_bytes()),
            Value::U32(v) => out.extend(v.to_le_bytes()),
            Value::I32(v) => out.extend(v.to_le_bytes()),
            Value::F32(v) => out.extend(v.to_le_bytes()),
            Value::Bool(v) => out.push(u8::from(*v)),
            Value::Str(s) => write_str(out, s),
            Value::U64(v) => out.extend(v.to_le_bytes()),
            Value::I64(v) => out.extend(v.to_le_bytes()),
            Value::F64(v) => out.extend(v.to_le_bytes()),
            Value::Array(items) => {
                let elem = items.first().map_or(0, Value::type_id);
                out.extend(elem.to_le_bytes());
                out.extend((items.len() as u64).to_le_bytes());
                for item in items {
                    item.write(out);
                }
            }
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_string())
    }
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

struct Tensor {
    name: String,
    dims: Vec<u64>,
    ty: GgmlType,
    bytes: u64,
    /// `None` for a tensor declared with [`GgufWriter::declare`], whose bytes the caller
    /// streams at [`GgufWriter::write_to`].
    data: Option<Vec<u8>>,
}

/// Collects metadata and tensors, then lays out a GGUF file.
#[derive(Default)]
pub struct GgufWriter {
    kv: Vec<(String, Value)>,
    tensors: Vec<Tensor>,
}

impl GgufWriter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn kv(&mut self, key: &str, value: Value) -> &mut Self {
        self.kv.push((key.to_string(), value));
        self
    }

    /// Replaces the value of `key`, or adds it.
    pub fn set(&mut self, key: &str, value: Value) -> &mut Self {
        match self.kv.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.kv.push((key.to_string(), value)),
        }
        self
    }

    /// Adds a tensor; `data` must be exactly its encoded size.
    ///
    /// # Panics
    /// If `data` does not match the shape and type: this is a tool for building test files,
    /// where a wrong size is a bug in the test.
    pub fn tensor(&mut self, name: &str, dims: &[u64], ty: GgmlType, data: Vec<u8>) -> &mut Self {
        self.declare(name, dims, ty);
        let t = self.tensors.last_mut().expect("just declared");
        assert_eq!(data.len() as u64, t.bytes, "data size of tensor {name}");
        t.data = Some(data);
        self
    }

    /// Adds a tensor whose bytes are written later, by the `fill` of [`GgufWriter::write_to`]
    /// (files larger than memory are streamed this way).
    ///
    /// # Panics
    /// If `dims[0]` is not whole blocks of `ty` (a bug in the caller).
    pub fn declare(&mut self, name: &str, dims: &[u64], ty: GgmlType) -> &mut Self {
        let rows: u64 = dims[1..].iter().product();
        let bytes = ty.row_bytes(dims[0]).expect("whole blocks") * rows;
        self.tensors.push(Tensor {
            name: name.to_string(),
            dims: dims.to_vec(),
            ty,
            bytes,
            data: None,
        });
        self
    }

    /// Bytes of every tensor's data, in order.
    pub fn tensor_bytes(&self) -> impl Iterator<Item = u64> + '_ {
        self.tensors.iter().map(|t| t.bytes)
    }

    /// Writes the file to `out`: the header, then each tensor's data, padded to the
    /// alignment. A declared tensor's bytes come from `fill(index, out)`, which must write
    /// exactly that tensor's size (anything else is an error).
    pub fn write_to(
        &self,
        out: &mut dyn std::io::Write,
        fill: &mut dyn FnMut(usize, &mut dyn std::io::Write) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let align = DEFAULT_ALIGNMENT;
        let mut head = Vec::new();
        head.extend(b"GGUF");
        head.extend(3u32.to_le_bytes());
        head.extend((self.tensors.len() as u64).to_le_bytes());
        head.extend((self.kv.len() as u64).to_le_bytes());
        for (k, v) in &self.kv {
            write_str(&mut head, k);
            head.extend(v.type_id().to_le_bytes());
            v.write(&mut head);
        }
        let mut offset = 0u64;
        for t in &self.tensors {
            write_str(&mut head, &t.name);
            head.extend((t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                head.extend(d.to_le_bytes());
            }
            head.extend(t.ty.id().to_le_bytes());
            head.extend(offset.to_le_bytes());
            offset = (offset + t.bytes).next_multiple_of(align);
        }
        out.write_all(&head)?;
        let mut at = head.len() as u64;
        for (i, t) in self.tensors.iter().enumerate() {
            let pad = at.next_multiple_of(align) - at;
            out.write_all(&vec![0; pad as usize])?;
            at += pad;
            match &t.data {
                Some(d) => out.write_all(d)?,
                None => {
                    let mut counted = Counted { inner: out, n: 0 };
                    fill(i, &mut counted)?;
                    if counted.n != t.bytes {
                        return Err(std::io::Error::other(format!(
                            "tensor {}: {} bytes written, {} expected",
                            t.name, counted.n, t.bytes
                        )));
                    }
                }
            }
            at += t.bytes;
        }
        Ok(())
    }

    /// The encoded file.
    ///
    /// # Panics
    /// If a tensor was declared without data (stream those with [`GgufWriter::write_to`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out, &mut |i, _| {
            Err(std::io::Error::other(format!(
                "tensor {} has no data",
                self.tensors[i].name
            )))
        })
        .expect("every tensor has its data");
        out
    }
}

/// A writer that counts what passes through it.
struct Counted<'a> {
    inner: &'a mut dyn std::io::Write,
    n: u64,
}

impl std::io::Write for Counted<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

//! A pickle reader for state dicts: a stack machine over the opcodes `torch.save` emits
//! (protocol 2, and the protocol-4 forms of the same operations), that builds plain values
//! and never imports or calls anything.
//!
//! Globals are an allow-list ([`Global`]): `collections.OrderedDict`, the two tensor rebuild
//! functions and the `torch.*Storage` types. A `REDUCE` of those builds a dict or records a
//! tensor view ([`TensorRef`]: storage, offset, size, stride); a persistent id names a
//! storage ([`StorageRef`]). Anything else is an error naming it.
//!
//! Objects live in one arena indexed by [`Value::Obj`], so the memo and the stack copy
//! indices, never objects: memory is linear in the pickle's length (each opcode adds at
//! most one object or one stack slot), nesting cannot recurse, and cycles cannot leak.

use std::collections::HashMap;

use super::error::PthError;
use super::value::{Global, Object, Pickle, StorageRef, TensorRef, Value};

/// The deepest nesting of `MARK`s accepted; a state dict needs 3.
pub(super) const MAX_MARKS: usize = 1000;
/// The most dimensions of a tensor.
pub(super) const MAX_DIMS: usize = 16;
/// The longest global name (module or attribute) accepted.
const MAX_GLOBAL_LEN: usize = 256;

/// The machine's state while it runs.
struct Machine<'a> {
    bytes: &'a [u8],
    at: usize,
    /// Where the current opcode started, for errors.
    op_at: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    objects: Vec<Object>,
}

/// Parses `bytes` (a whole `data.pkl`).
///
/// # Errors
/// [`PthError::Global`] for a global outside the allow-list, [`PthError::Pickle`] for
/// anything malformed or unsupported, with the byte offset of the opcode.
pub(super) fn parse(bytes: &[u8]) -> Result<Pickle, PthError> {
    let mut m = Machine {
        bytes,
        at: 0,
        op_at: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        objects: Vec::new(),
    };
    let root = m.run()?;
    Ok(Pickle {
        objects: m.objects,
        root,
    })
}

impl Machine<'_> {
    fn err(&self, detail: impl Into<String>) -> PthError {
        PthError::Pickle {
            offset: self.op_at,
            detail: detail.into(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&[u8], PthError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| {
                self.err(format!(
                    "needs {n} more bytes, {} are left (truncated, or a length field is too large)",
                    self.bytes.len() - self.at
                ))
            })?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, PthError> {
        Ok(self.take(1)?[0])
    }

    fn le<const N: usize>(&mut self) -> Result<[u8; N], PthError> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }

    fn line(&mut self) -> Result<String, PthError> {
        let rest = &self.bytes[self.at..];
        let end = rest
            .iter()
            .take(MAX_GLOBAL_LEN + 1)
            .position(|&b| b == b'\n')
            .ok_or_else(|| {
                self.err("a global name without its newline (truncated?) or longer than 256 bytes")
            })?;
        let text = std::str::from_utf8(&rest[..end])
            .map_err(|_| self.err("a global name that is not UTF-8"))?
            .to_string();
        self.at += end + 1;
        Ok(text)
    }

    fn push_obj(&mut self, object: Object) {
        self.objects.push(object);
        self.stack.push(Value::Obj(self.objects.len() - 1));
    }

    fn pop(&mut self) -> Result<Value, PthError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.err("pops an empty stack"));
        }
        Ok(self.stack.pop().expect("checked above"))
    }

    fn top(&self) -> Result<Value, PthError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.err("reads an empty stack"));
        }
        Ok(*self.stack.last().expect("checked above"))
    }

    /// The values pushed since the last `MARK`, which is removed.
    fn pop_mark(&mut self) -> Result<Vec<Value>, PthError> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| self.err("no MARK to pop to"))?;
        Ok(self.stack.split_off(mark))
    }

    fn str_object(&mut self, raw: Vec<u8>) -> Result<(), PthError> {
        let text = String::from_utf8(raw).map_err(|_| self.err("a string that is not UTF-8"))?;
        self.push_obj(Object::Str(text));
        Ok(())
    }

    fn length(&mut self, n: u64) -> Result<usize, PthError> {
        usize::try_from(n).map_err(|_| self.err(format!("a length of {n} bytes")))
    }

    fn int(&mut self, raw: &[u8]) -> Result<(), PthError> {
        // Python's LONG1/LONG4: little-endian two's complement of any length.
        if raw.len() > 8 {
            return Err(self.err(format!(
                "an integer of {} bytes; 8 is the most a state dict needs",
                raw.len()
            )));
        }
        let mut buf = if raw.last().is_some_and(|&b| b & 0x80 != 0) {
            [0xff; 8]
        } else {
            [0; 8]
        };
        buf[..raw.len()].copy_from_slice(raw);
        self.stack.push(Value::Int(i64::from_le_bytes(buf)));
        Ok(())
    }

    fn memo_put(&mut self, key: u32) -> Result<(), PthError> {
        let value = self.top()?;
        self.memo.insert(key, value);
        Ok(())
    }

    fn memo_get(&mut self, key: u32) -> Result<(), PthError> {
        let value = *self
            .memo
            .get(&key)
            .ok_or_else(|| self.err(format!("memo entry {key} was never stored")))?;
        self.stack.push(value);
        Ok(())
    }

    fn object_mut(&mut self, value: Value) -> Option<&mut Object> {
        match value {
            Value::Obj(i) => self.objects.get_mut(i),
            _ => None,
        }
    }

    fn set_items(&mut self, items: Vec<Value>) -> Result<(), PthError> {
        if !items.len().is_multiple_of(2) {
            return Err(self.err("SETITEMS with an odd number of values"));
        }
        let target = self.top()?;
        let pairs = items.chunks_exact(2).map(|kv| (kv[0], kv[1]));
        match self.object_mut(target) {
            Some(Object::Dict(dict)) => {
                dict.extend(pairs);
                Ok(())
            }
            _ => Err(self.err("SETITEM on something that is not a dict")),
        }
    }

    fn append(&mut self, items: Vec<Value>) -> Result<(), PthError> {
        let target = self.top()?;
        match self.object_mut(target) {
            Some(Object::List(list)) => {
                list.extend(items);
                Ok(())
            }
            _ => Err(self.err("APPEND on something that is not a list")),
        }
    }

    fn tuple(&mut self, n: usize) -> Result<(), PthError> {
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(self.pop()?);
        }
        items.reverse();
        self.push_obj(Object::Tuple(items));
        Ok(())
    }

    fn global(&mut self, module: &str, name: &str) -> Result<(), PthError> {
        let global = Global::resolve(module, name)?;
        self.push_obj(Object::Global(global));
        Ok(())
    }

    /// The items of the tuple `value`, which may have at most `max` (checked before they
    /// are copied, so a large tuple read many times costs nothing).
    fn tuple_items(&self, value: Value, what: &str, max: usize) -> Result<Vec<Value>, PthError> {
        let items = match value {
            Value::Obj(i) => match self.objects.get(i) {
                Some(Object::Tuple(items)) => items,
                _ => return Err(self.err(format!("{what} is not a tuple"))),
            },
            _ => return Err(self.err(format!("{what} is not a tuple"))),
        };
        if items.len() > max {
            return Err(self.err(format!(
                "{what} has {} items, more than the {max} expected",
                items.len()
            )));
        }
        Ok(items.clone())
    }

    fn count(&self, value: Value, what: &str) -> Result<u64, PthError> {
        match value {
            Value::Int(n) if n >= 0 => Ok(n as u64),
            Value::Int(n) => Err(self.err(format!("{what} is {n}, negative"))),
            _ => Err(self.err(format!("{what} is not an integer"))),
        }
    }

    /// Checks that `value` is a tuple of at most [`MAX_DIMS`] non-negative ints; returns its
    /// arena index and length.
    fn dims(&self, value: Value, what: &str) -> Result<(usize, usize), PthError> {
        let items = self.tuple_items(value, what, MAX_DIMS)?;
        for &v in &items {
            self.count(v, what)?;
        }
        match value {
            Value::Obj(i) => Ok((i, items.len())),
            _ => unreachable!("tuple_items accepted it"),
        }
    }

    fn reduce(&mut self) -> Result<(), PthError> {
        let args = self.pop()?;
        let callable = self.pop()?;
        let args = self.tuple_items(args, "REDUCE's arguments", 7)?;
        let global = match self.object_mut(callable) {
            Some(Object::Global(g)) => *g,
            _ => return Err(self.err("REDUCE of something that is not a class or function")),
        };
        match global {
            Global::OrderedDict if args.is_empty() => self.push_obj(Object::Dict(Vec::new())),
            Global::OrderedDict => {
                return Err(self.err("OrderedDict called with arguments"));
            }
            Global::RebuildTensorV2 => {
                // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
                if !(6..=7).contains(&args.len()) {
                    return Err(self.err(format!(
                        "_rebuild_tensor_v2 with {} arguments, not 6 or 7",
                        args.len()
                    )));
                }
                let storage = match args[0] {
                    Value::Obj(i) if matches!(self.objects.get(i), Some(Object::Storage(_))) => i,
                    _ => return Err(self.err("_rebuild_tensor_v2 of something not a storage")),
                };
                let offset = self.count(args[1], "the storage offset")?;
                let (size, dims) = self.dims(args[2], "the size")?;
                let (stride, stride_dims) = self.dims(args[3], "the stride")?;
                if dims != stride_dims {
                    return Err(self.err(format!(
                        "a size of {dims} dimensions with a stride of {stride_dims}"
                    )));
                }
                self.push_obj(Object::Tensor(Box::new(TensorRef {
                    storage,
                    offset,
                    size,
                    stride,
                })));
            }
            Global::RebuildParameter => {
                let tensor = args.first().copied().filter(|&v| {
                    matches!(
                        v,
                        Value::Obj(i) if matches!(self.objects.get(i), Some(Object::Tensor(_)))
                    )
                });
                let tensor = tensor
                    .ok_or_else(|| self.err("_rebuild_parameter of something not a tensor"))?;
                self.stack.push(tensor);
            }
            Global::Storage(t) => {
                return Err(self.err(format!("torch.{} called as a function", t.name())));
            }
        }
        Ok(())
    }

    fn persistent_load(&mut self) -> Result<(), PthError> {
        let pid = self.pop()?;
        let items = self.tuple_items(pid, "the persistent id", 5)?;
        let is_str = |v: Value, text: Option<&str>| match v {
            Value::Obj(i) => match self.objects.get(i) {
                Some(Object::Str(s)) => text.is_none_or(|t| s == t),
                _ => false,
            },
            _ => false,
        };
        if items.len() != 5 || !is_str(items[0], Some("storage")) {
            return Err(
                self.err("a persistent id other than ('storage', type, key, location, numel)")
            );
        }
        let dtype = match self.objects.get(match items[1] {
            Value::Obj(i) => i,
            _ => usize::MAX,
        }) {
            Some(Object::Global(Global::Storage(t))) => *t,
            _ => return Err(self.err("a persistent id whose type is not a torch.*Storage")),
        };
        let key = match items[2] {
            Value::Obj(i) => match self.objects.get(i) {
                Some(Object::Str(s)) => s.clone(),
                _ => return Err(self.err("a storage key that is not a string")),
            },
            _ => return Err(self.err("a storage key that is not a string")),
        };
        if !is_str(items[3], None) {
            return Err(self.err("a storage location that is not a string"));
        }
        let numel = self.count(items[4], "the storage's element count")?;
        self.push_obj(Object::Storage(Box::new(StorageRef { dtype, key, numel })));
        Ok(())
    }

    fn run(&mut self) -> Result<Value, PthError> {
        loop {
            self.op_at = self.at;
            let op = self.u8()?;
            match op {
                0x80 => {
                    let version = self.u8()?;
                    if version > 5 {
                        return Err(self.err(format!("pickle protocol {version}")));
                    }
                }
                0x95 => {
                    self.le::<8>()?; // FRAME: a length hint, nothing to do
                }
                b'.' => {
                    let result = self.pop()?;
                    if !self.marks.is_empty() {
                        return Err(self.err("STOP inside an open MARK"));
                    }
                    return Ok(result);
                }
                b'(' => {
                    if self.marks.len() >= MAX_MARKS {
                        return Err(self.err(format!("nested deeper than {MAX_MARKS} levels")));
                    }
                    self.marks.push(self.stack.len());
                }
                b')' => self.push_obj(Object::Tuple(Vec::new())),
                b']' => self.push_obj(Object::List(Vec::new())),
                b'}' => self.push_obj(Object::Dict(Vec::new())),
                b't' => {
                    let items = self.pop_mark()?;
                    self.push_obj(Object::Tuple(items));
                }
                0x85 => self.tuple(1)?,
                0x86 => self.tuple(2)?,
                0x87 => self.tuple(3)?,
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push_obj(Object::List(items));
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    self.push_obj(Object::Dict(Vec::new()));
                    self.set_items(items)?;
                }
                b'a' => {
                    let item = self.pop()?;
                    self.append(vec![item])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.append(items)?;
                }
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    self.set_items(vec![key, value])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?;
                }
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'K' => {
                    let v = self.u8()?;
                    self.stack.push(Value::Int(v.into()));
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.le()?);
                    self.stack.push(Value::Int(v.into()));
                }
                b'J' => {
                    let v = i32::from_le_bytes(self.le()?);
                    self.stack.push(Value::Int(v.into()));
                }
                0x8a => {
                    let n = self.u8()?.into();
                    let raw = self.take(n)?.to_vec();
                    self.int(&raw)?;
                }
                0x8b => {
                    let n = i32::from_le_bytes(self.le()?);
                    let n = self.length(u64::try_from(n).unwrap_or(u64::MAX))?;
                    let raw = self.take(n)?.to_vec();
                    self.int(&raw)?;
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.le()?);
                    self.stack.push(Value::Float(v));
                }
                b'X' => {
                    let n = u32::from_le_bytes(self.le()?);
                    let n = self.length(n.into())?;
                    let raw = self.take(n)?.to_vec();
                    self.str_object(raw)?;
                }
                0x8c | b'U' => {
                    let n = self.u8()?.into();
                    let raw = self.take(n)?.to_vec();
                    self.str_object(raw)?;
                }
                0x8d => {
                    let n = u64::from_le_bytes(self.le()?);
                    let n = self.length(n)?;
                    let raw = self.take(n)?.to_vec();
                    self.str_object(raw)?;
                }
                b'T' => {
                    let n = i32::from_le_bytes(self.le()?);
                    let n = self.length(u64::try_from(n).unwrap_or(u64::MAX))?;
                    let raw = self.take(n)?.to_vec();
                    self.str_object(raw)?;
                }
                b'B' => {
                    let n = u32::from_le_bytes(self.le()?);
                    let n = self.length(n.into())?;
                    self.take(n)?;
                    self.push_obj(Object::Bytes(n));
                }
                b'C' => {
                    let n = self.u8()?.into();
                    self.take(n)?;
                    self.push_obj(Object::Bytes(n));
                }
                b'q' => {
                    let key = self.u8()?;
                    self.memo_put(key.into())?;
                }
                b'r' => {
                    let key = u32::from_le_bytes(self.le()?);
                    self.memo_put(key)?;
                }
                0x94 => {
                    let key = u32::try_from(self.memo.len())
                        .map_err(|_| self.err("too many memo entries"))?;
                    self.memo_put(key)?;
                }
                b'h' => {
                    let key = self.u8()?;
                    self.memo_get(key.into())?;
                }
                b'j' => {
                    let key = u32::from_le_bytes(self.le()?);
                    self.memo_get(key)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global(&module, &name)?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let text = |v: Value| match v {
                        Value::Obj(i) => match self.objects.get(i) {
                            Some(Object::Str(s)) => Some(s.clone()),
                            _ => None,
                        },
                        _ => None,
                    };
                    let (Some(module), Some(name)) = (text(module), text(name)) else {
                        return Err(self.err("STACK_GLOBAL of values that are not strings"));
                    };
                    self.global(&module, &name)?;
                }
                b'R' => self.reduce()?,
                b'b' => {
                    let _state = self.pop()?;
                    let target = self.top()?;
                    // OrderedDict's `_metadata` (module versions), a parameter's state:
                    // nothing a state dict's values need.
                    if !matches!(
                        self.object_mut(target),
                        Some(Object::Dict(_) | Object::Tensor(_))
                    ) {
                        return Err(self.err("BUILD of something that is not a dict or tensor"));
                    }
                }
                b'Q' => self.persistent_load()?,
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let top = self.top()?;
                    self.stack.push(top);
                }
                other => {
                    return Err(self.err(format!(
                        "opcode 0x{other:02x} ({}), which a state dict does not need",
                        opcode_name(other)
                    )));
                }
            }
        }
    }
}

/// Names of the opcodes that are refused, for the error message.
fn opcode_name(op: u8) -> &'static str {
    match op {
        b'i' => "INST: builds an object",
        b'o' => "OBJ: builds an object",
        0x81 => "NEWOBJ: builds an object",
        0x92 => "NEWOBJ_EX: builds an object",
        b'P' => "PERSID",
        b'I' => "INT",
        b'L' => "LONG",
        b'F' => "FLOAT",
        b'S' => "STRING",
        b'V' => "UNICODE",
        b'p' => "PUT",
        b'g' => "GET",
        0x82..=0x84 => "EXT: the extension registry",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => "unknown",
    }
}

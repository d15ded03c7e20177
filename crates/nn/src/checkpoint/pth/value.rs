//! The values a state-dict pickle builds: scalars, strings, containers, the allowed
//! globals, storages and tensor views — plain data, never Python objects.

use super::error::PthError;

/// The element type of a `torch.*Storage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StorageType {
    /// float32
    Float,
    /// float64
    Double,
    /// float16
    Half,
    /// bfloat16
    BFloat16,
    /// int64
    Long,
    /// Another PyTorch type (int32, uint8, bool, …), named by its class.
    Other(&'static str),
}

impl StorageType {
    const ALL: [(&'static str, StorageType); 11] = [
        ("FloatStorage", StorageType::Float),
        ("DoubleStorage", StorageType::Double),
        ("HalfStorage", StorageType::Half),
        ("BFloat16Storage", StorageType::BFloat16),
        ("LongStorage", StorageType::Long),
        ("IntStorage", StorageType::Other("IntStorage")),
        ("ShortStorage", StorageType::Other("ShortStorage")),
        ("CharStorage", StorageType::Other("CharStorage")),
        ("ByteStorage", StorageType::Other("ByteStorage")),
        ("BoolStorage", StorageType::Other("BoolStorage")),
        (
            "ComplexFloatStorage",
            StorageType::Other("ComplexFloatStorage"),
        ),
    ];

    /// Bytes per element (`None` for the types Ventral does not read).
    pub(super) fn element_bytes(self) -> Option<u64> {
        match self {
            StorageType::Float => Some(4),
            StorageType::Double | StorageType::Long => Some(8),
            StorageType::Half | StorageType::BFloat16 => Some(2),
            StorageType::Other(_) => None,
        }
    }

    /// PyTorch's class name.
    pub(super) fn name(self) -> &'static str {
        match self {
            StorageType::Other(name) => name,
            known => {
                StorageType::ALL
                    .iter()
                    .find(|(_, t)| *t == known)
                    .expect("every known type is listed")
                    .0
            }
        }
    }
}

/// A global the reader accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Global {
    /// `collections.OrderedDict`
    OrderedDict,
    /// `torch._utils._rebuild_tensor_v2`
    RebuildTensorV2,
    /// `torch._utils._rebuild_parameter` (and `_rebuild_parameter_with_state`)
    RebuildParameter,
    /// `torch.<T>Storage`
    Storage(StorageType),
}

impl Global {
    /// The allowed global `module.name`.
    ///
    /// # Errors
    /// [`PthError::Global`] naming any other.
    pub(super) fn resolve(module: &str, name: &str) -> Result<Global, PthError> {
        match (module, name) {
            ("collections", "OrderedDict") => Ok(Global::OrderedDict),
            ("torch._utils", "_rebuild_tensor_v2") => Ok(Global::RebuildTensorV2),
            ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
                Ok(Global::RebuildParameter)
            }
            ("torch", _) => StorageType::ALL
                .iter()
                .find(|(n, _)| *n == name)
                .map(|&(_, t)| Global::Storage(t))
                .ok_or_else(|| refused(module, name)),
            _ => Err(refused(module, name)),
        }
    }
}

fn refused(module: &str, name: &str) -> PthError {
    PthError::Global {
        module: module.to_string(),
        name: name.to_string(),
    }
}

/// A storage named by a persistent id: `('storage', torch.<T>Storage, key, location, numel)`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct StorageRef {
    /// The element type.
    pub dtype: StorageType,
    /// Its entry in the archive is `data/<key>`.
    pub key: String,
    /// Elements it declares.
    pub numel: u64,
}

/// A tensor as `_rebuild_tensor_v2` would build it: a view of a storage.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct TensorRef {
    /// The storage (an [`Object::Storage`] in the arena).
    pub storage: usize,
    /// Offset of element 0 in the storage, in elements.
    pub offset: u64,
    /// Shape: a tuple of non-negative ints in the arena (checked when the tensor was built;
    /// read it with [`Pickle::dims`]).
    pub size: usize,
    /// Stride of each dimension, in elements: a tuple like `size`, of the same length.
    pub stride: usize,
}

/// A value on the stack or in a container: scalars inline, everything else in the arena.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Value {
    /// `None`
    None,
    /// `True` / `False`
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// A float.
    Float(f64),
    /// An object in the arena.
    Obj(usize),
}

/// An object in the arena.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Object {
    /// A `str`.
    Str(String),
    /// A `bytes` (its length only: a state dict never needs the contents).
    Bytes(usize),
    /// A tuple.
    Tuple(Vec<Value>),
    /// A list.
    List(Vec<Value>),
    /// A dict or OrderedDict: its items in insertion order (a repeated key is kept as
    /// written; [`super`] keeps the last value).
    Dict(Vec<(Value, Value)>),
    /// An allowed global.
    Global(Global),
    /// A storage.
    Storage(Box<StorageRef>),
    /// A tensor.
    Tensor(Box<TensorRef>),
}

/// A parsed pickle: the arena and the value `STOP` returned.
#[derive(Debug)]
pub(super) struct Pickle {
    /// Every object built.
    pub objects: Vec<Object>,
    /// The result.
    pub root: Value,
}

impl Pickle {
    /// The object `value` refers to, if it is one.
    pub(super) fn object(&self, value: Value) -> Option<&Object> {
        match value {
            Value::Obj(i) => self.objects.get(i),
            _ => None,
        }
    }

    /// The non-negative ints of the tuple `index` (a [`TensorRef`]'s size or stride).
    pub(super) fn dims(&self, index: usize) -> Vec<u64> {
        match self.objects.get(index) {
            Some(Object::Tuple(items)) => items
                .iter()
                .map(|v| match v {
                    Value::Int(n) => *n as u64,
                    _ => 0,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// A short description of a value's type, for errors.
    pub(super) fn kind(&self, value: Value) -> &'static str {
        match value {
            Value::None => "None",
            Value::Bool(_) => "a bool",
            Value::Int(_) => "an int",
            Value::Float(_) => "a float",
            Value::Obj(_) => match self.object(value) {
                Some(Object::Str(_)) => "a str",
                Some(Object::Bytes(_)) => "bytes",
                Some(Object::Tuple(_)) => "a tuple",
                Some(Object::List(_)) => "a list",
                Some(Object::Dict(_)) => "a dict",
                Some(Object::Global(_)) => "a class or function",
                Some(Object::Storage(_)) => "a storage",
                Some(Object::Tensor(_)) => "a tensor",
                None => "nothing",
            },
        }
    }
}

//! `jsonb` arguments read here, so that a bad one is a clean ERROR.
//!
//! pgrx's own `JsonB` argument prints the value with `jsonb_out` and parses that text with
//! serde_json, panicking when serde_json refuses it; serde_json refuses nesting deeper than
//! 128 levels, which Postgres' jsonb accepts, so any caller could turn `'[[[[…]]]]'` into an
//! internal error (XX000). [`JsonbArg`] is declared `jsonb` in SQL like `JsonB`;
//! [`JsonbArg::parse`] raises 22023 (or 54000 when it is over the size limit) naming the
//! argument.
//!
//! It reads jsonb's binary form directly ([`binary_to_value`]): printing a batch of messages as
//! text only to parse that text again was 7 % of an enqueue's instructions. The limits keep
//! their meaning (bytes of the text `jsonb_out` would print, counted exactly), and whatever the
//! binary reading declines (a value over the limit, nesting serde_json would refuse, a number
//! serde_json cannot hold) takes the text path, whose errors are the documented ones.

use crate::errors::raise;
use pgrx::callconv::{Arg, ArgAbi};
use pgrx::nullable::Nullable;
use pgrx::pgrx_sql_entity_graph::metadata::{
    ArgumentError, ReturnsError, ReturnsRef, SqlMappingRef, SqlTranslatable,
};
use pgrx::prelude::*;
use pgrx::{direct_function_call, FromDatum};
use serde_json::{Map, Value};
use std::ffi::CStr;

/// A `jsonb` argument: its detoasted value, valid for the function call that received it.
pub struct JsonbArg(*mut pg_sys::Jsonb);

impl FromDatum for JsonbArg {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        _: pg_sys::Oid,
    ) -> Option<JsonbArg> {
        if is_null {
            return None;
        }
        // SAFETY: the datum is a jsonb (the SQL signature says so); detoasting gives the
        // 4-byte-header form the jsonb functions read, in the call's memory context.
        unsafe {
            let detoasted = pg_sys::pg_detoast_datum(datum.cast_mut_ptr());
            Some(JsonbArg(detoasted.cast()))
        }
    }
}

// SAFETY: the same unboxing pgrx does for its own FromDatum argument types.
unsafe impl<'fcx> ArgAbi<'fcx> for JsonbArg {
    unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
        let index = arg.index();
        unsafe {
            arg.unbox_arg_using_from_datum()
                .unwrap_or_else(|| panic!("argument {index} must not be null"))
        }
    }

    unsafe fn unbox_nullable_arg(arg: Arg<'_, 'fcx>) -> Nullable<Self> {
        unsafe { arg.unbox_arg_using_from_datum().into() }
    }
}

// SAFETY: declared as jsonb, which is what FromDatum above reads.
unsafe impl SqlTranslatable for JsonbArg {
    const TYPE_IDENT: &'static str = pgrx::pgrx_resolved_type!(JsonbArg);
    const TYPE_ORIGIN: pgrx::pgrx_sql_entity_graph::metadata::TypeOrigin =
        pgrx::pgrx_sql_entity_graph::metadata::TypeOrigin::External;
    const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> = Ok(SqlMappingRef::literal("jsonb"));
    const RETURN_SQL: Result<ReturnsRef, ReturnsError> =
        Ok(ReturnsRef::One(SqlMappingRef::literal("jsonb")));
}

impl JsonbArg {
    /// The text `jsonb_out` prints for it.
    pub fn text(&self) -> String {
        // SAFETY: a detoasted jsonb (FromDatum above); jsonb_out returns a palloc'd C string,
        // copied here and freed.
        unsafe {
            let cstr = direct_function_call::<&CStr>(
                pg_sys::jsonb_out,
                &[Some(pg_sys::Datum::from(self.0))],
            )
            .expect("jsonb_out returns a string");
            let text = cstr.to_string_lossy().into_owned();
            pg_sys::pfree(cstr.as_ptr() as *mut std::ffi::c_void);
            text
        }
    }

    /// The value, or ERROR 54000 when its text is over `max_bytes`, 22023 when serde_json
    /// cannot take it (nested too deeply), naming `what`.
    pub fn parse(&self, what: &str, max_bytes: usize, domain: &'static str) -> Value {
        // SAFETY: a detoasted jsonb (FromDatum above), alive for this call.
        let read = unsafe { binary_to_value(&mut (*self.0).root, max_bytes) };
        match read {
            Read::Value(value, text_len) => {
                // Tests run a debug build: there every argument is also read the text way, so
                // the whole suite checks that the two readings agree.
                if cfg!(debug_assertions) {
                    let text = self.text();
                    assert_eq!(text_len, text.len(), "text length of a jsonb argument");
                    assert_eq!(
                        Some(&value),
                        parse_json_text(&text).ok().as_ref(),
                        "value of a jsonb argument"
                    );
                }
                return value;
            }
            // Over the limit: its size is counted without printing it (a string of control
            // characters prints six bytes for each of its own, past what a palloc can hold)
            Read::TooLong(text_len) => {
                if cfg!(debug_assertions) && text_len <= 64 << 20 {
                    assert_eq!(
                        text_len,
                        self.text().len(),
                        "text length of a jsonb argument"
                    );
                }
                too_long(what, text_len, max_bytes, domain);
            }
            Read::Declined => {}
        }
        let text = self.text();
        if text.len() > max_bytes {
            too_long(what, text.len(), max_bytes, domain);
        }
        parse_json_text(&text).unwrap_or_else(|e| {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("{what}: {e}"),
                None,
                domain,
            )
        })
    }
}

/// ERROR 54000: `what`'s text is `text_len` bytes, over `max_bytes`.
fn too_long(what: &str, text_len: usize, max_bytes: usize, domain: &'static str) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
        format!("{what}: {text_len} bytes of JSON exceed the limit of {max_bytes} (crm.max_json_argument_bytes)"),
        None,
        domain,
    )
}

/// What [`binary_to_value`] made of a jsonb.
enum Read {
    /// the value, and the length of its `jsonb_out` text
    Value(Value, usize),
    /// its text is this many bytes, over the limit
    TooLong(usize),
    /// something the text path decides (nesting, a number, a string that is not UTF-8)
    Declined,
}

/// A value the binary reading leaves to the text path.
struct Declined;

/// Deeper than this the binary reading declines (serde_json, which the text path uses, refuses
/// 128 levels; the text path then gives its error).
const MAX_BINARY_DEPTH: usize = 120;

/// A container being read.
enum Open {
    Array(Vec<Value>),
    /// the object so far, and the key whose value comes next
    Object(Map<String, Value>, Option<String>),
}

/// `root` as the `Value` serde_json parses from its `jsonb_out` text, and that text's length
/// in bytes, counted as `jsonb_out` prints it (`", "` between items, `": "` after a key,
/// strings escaped as `escape_json` does, numbers as `numeric_out` writes them). Once the text
/// is over `max_bytes` the walk stops building and only counts, for TooLong's exact size.
/// Declined when nesting reaches [`MAX_BINARY_DEPTH`], for a number serde_json cannot hold, or
/// for a string that is not UTF-8 (a database in another encoding: the text path reads it
/// lossily, and counts what it read).
///
/// # Safety
/// `root` is the root container of a detoasted jsonb that outlives the call.
unsafe fn binary_to_value(root: *mut pg_sys::JsonbContainer, max_bytes: usize) -> Read {
    use pg_sys::JsonbIteratorToken::*;
    // SAFETY: per the function's contract; JsonbIteratorNext fills `item` for each token, and
    // only the union field its token and type name is read.
    unsafe {
        let mut it = pg_sys::JsonbIteratorInit(root);
        let mut item: pg_sys::JsonbValue = std::mem::zeroed();
        // the containers being built; None once the text is over the limit
        let mut open: Option<Vec<Open>> = Some(Vec::new());
        let mut len = 0usize;
        let mut first = true; // no ", " before the next item
        let mut raw_scalar = false; // a top-level scalar: printed without brackets
        let mut done = None;
        let mut tokens = 0u32;
        loop {
            let token = pg_sys::JsonbIteratorNext(&mut it, &mut item, false);
            let separated = matches!(
                token,
                WJB_BEGIN_ARRAY | WJB_BEGIN_OBJECT | WJB_KEY | WJB_ELEM
            );
            if separated && !first {
                len += 2;
            }
            let closed = match token {
                WJB_DONE => break,
                WJB_BEGIN_ARRAY | WJB_BEGIN_OBJECT => {
                    let object = token == WJB_BEGIN_OBJECT;
                    if object || !item.val.array.rawScalar {
                        len += 1;
                    } else {
                        raw_scalar = true;
                    }
                    if let Some(open) = open.as_mut() {
                        if open.len() >= MAX_BINARY_DEPTH {
                            return Read::Declined;
                        }
                        open.push(if object {
                            Open::Object(Map::new(), None)
                        } else {
                            // (capacity capped: an array of millions of nulls is refused once
                            // its text passes the limit, not after allocating for all of them)
                            let n = usize::try_from(item.val.array.nElems).unwrap_or(0);
                            Open::Array(Vec::with_capacity(n.min(1024)))
                        });
                    }
                    None
                }
                WJB_KEY => {
                    let Ok(key) = string_of(&item, &mut len, open.is_some()) else {
                        return Read::Declined;
                    };
                    len += 2;
                    if let (Some(open), Some(key)) = (open.as_mut(), key) {
                        match open.last_mut() {
                            Some(Open::Object(_, pending)) => *pending = Some(key),
                            _ => return Read::Declined,
                        }
                    }
                    None
                }
                WJB_VALUE | WJB_ELEM => match scalar_of(&item, &mut len, open.is_some()) {
                    Ok(value) => value,
                    Err(Declined) => return Read::Declined,
                },
                WJB_END_ARRAY | WJB_END_OBJECT => {
                    if !(token == WJB_END_ARRAY && raw_scalar) {
                        len += 1;
                    }
                    match open.as_mut().map(Vec::pop) {
                        None => None,
                        Some(Some(Open::Array(mut items))) if raw_scalar => items.pop(),
                        Some(Some(Open::Array(items))) => Some(Value::Array(items)),
                        Some(Some(Open::Object(map, _))) => Some(Value::Object(map)),
                        Some(None) => return Read::Declined,
                    }
                }
                _ => return Read::Declined,
            };
            first = matches!(token, WJB_BEGIN_ARRAY | WJB_BEGIN_OBJECT | WJB_KEY);
            if let (Some(value), Some(open)) = (closed, open.as_mut()) {
                match open.last_mut() {
                    None => done = Some(value),
                    Some(Open::Array(items)) => items.push(value),
                    Some(Open::Object(map, pending)) => match pending.take() {
                        Some(key) => {
                            map.insert(key, value);
                        }
                        None => return Read::Declined,
                    },
                }
            }
            if open.is_some() && len > max_bytes {
                // from here on only count: the error names the whole text's size
                open = None;
                done = None;
            }
            tokens = tokens.wrapping_add(1);
            if tokens.is_multiple_of(4096) {
                pgrx::check_for_interrupts!();
            }
        }
        match (open, done) {
            (None, _) => Read::TooLong(len),
            (Some(_), Some(value)) => Read::Value(value, len),
            (Some(_), None) => Read::Declined,
        }
    }
}

/// A string item (a key or a value): its escaped text's length added to `len`, and the string
/// itself when `build`; Declined when it is not UTF-8.
///
/// # Safety
/// `item` is a jbvString filled by JsonbIteratorNext.
unsafe fn string_of(
    item: &pg_sys::JsonbValue,
    len: &mut usize,
    build: bool,
) -> Result<Option<String>, Declined> {
    // SAFETY: per the contract, `val` points at `len` bytes inside the jsonb.
    let bytes = unsafe {
        let s = item.val.string;
        std::slice::from_raw_parts(s.val as *const u8, usize::try_from(s.len).unwrap_or(0))
    };
    *len += escaped_text_len(bytes);
    let text = std::str::from_utf8(bytes).map_err(|_| Declined)?;
    Ok(build.then(|| text.to_owned()))
}

/// The length of a string as `escape_json` prints it, quotes included.
fn escaped_text_len(bytes: &[u8]) -> usize {
    // (most strings have nothing to escape: count those bytes in one pass, which vectorizes)
    let special = bytes.iter().fold(false, |any, &b| {
        any | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    2 + if !special {
        bytes.len()
    } else {
        bytes.iter().map(|&b| escaped_len(b)).sum::<usize>()
    }
}

/// How many bytes `escape_json` writes for one byte of a string.
fn escaped_len(b: u8) -> usize {
    match b {
        b'"' | b'\\' | 0x08 | 0x0c | b'\n' | b'\r' | b'\t' => 2,
        0..=0x1f => 6, // \u00XX
        _ => 1,
    }
}

/// A scalar item: its text's length added to `len`, and its value when `build`; Declined for a
/// number serde_json cannot hold (when building) or a string that is not UTF-8.
///
/// # Safety
/// `item` is a scalar filled by JsonbIteratorNext.
#[allow(non_upper_case_globals)] // (bindgen names jsonb's value types as Postgres does)
unsafe fn scalar_of(
    item: &pg_sys::JsonbValue,
    len: &mut usize,
    build: bool,
) -> Result<Option<Value>, Declined> {
    use pg_sys::jbvType::*;
    // SAFETY: the union field read is the one the item's type names.
    unsafe {
        let value = match item.type_ {
            jbvNull => {
                *len += 4;
                Value::Null
            }
            jbvBool => {
                let b = item.val.boolean;
                *len += if b { 4 } else { 5 };
                Value::Bool(b)
            }
            jbvString => return Ok(string_of(item, len, build)?.map(Value::String)),
            jbvNumeric => {
                let text = numeric_text(item).ok_or(Declined)?;
                *len += text.len();
                if !build {
                    return Ok(None);
                }
                // as serde_json parses these digits in the text
                Value::Number(serde_json::from_str(&text).map_err(|_| Declined)?)
            }
            _ => return Err(Declined),
        };
        Ok(build.then_some(value))
    }
}

/// A number item as `numeric_out` prints it.
///
/// # Safety
/// `item` is a jbvNumeric filled by JsonbIteratorNext.
unsafe fn numeric_text(item: &pg_sys::JsonbValue) -> Option<String> {
    // SAFETY: numeric_out of the item's numeric returns a palloc'd C string, copied and freed.
    unsafe {
        let cstr = direct_function_call::<&CStr>(
            pg_sys::numeric_out,
            &[Some(pg_sys::Datum::from(item.val.numeric))],
        )?;
        let text = cstr.to_str().ok().map(str::to_owned);
        pg_sys::pfree(cstr.as_ptr() as *mut std::ffi::c_void);
        text
    }
}

/// serde_json's refusal in words a caller can act on.
pub fn parse_json_text(text: &str) -> Result<Value, String> {
    parse_json_as(text)
}

/// `text` straight into `T` (no `Value` in between), with the same words for a refusal.
pub fn parse_json_as<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|e| {
        if e.to_string().contains("recursion limit") {
            "JSON nested deeper than 128 levels".to_string()
        } else {
            format!("invalid JSON: {e}")
        }
    })
}

//! `jsonb` arguments received as text and parsed here, so that a bad one is a clean ERROR.
//!
//! pgrx's own `JsonB` argument parses with serde_json and panics when that fails; serde_json
//! refuses nesting deeper than 128 levels, which Postgres' jsonb accepts, so any caller could
//! turn `'[[[[…]]]]'` into an internal error (XX000). [`JsonbArg`] is declared `jsonb` in SQL
//! like `JsonB`, but keeps the text; [`JsonbArg::parse`] raises 22023 (or 54000 when it is
//! over the size limit) naming the argument.

use crate::errors::raise;
use pgrx::callconv::{Arg, ArgAbi};
use pgrx::nullable::Nullable;
use pgrx::pgrx_sql_entity_graph::metadata::{
    ArgumentError, ReturnsError, ReturnsRef, SqlMappingRef, SqlTranslatable,
};
use pgrx::prelude::*;
use pgrx::{direct_function_call, FromDatum};
use serde_json::Value;
use std::ffi::CStr;

/// The text of a `jsonb` argument (as `jsonb_out` writes it).
pub struct JsonbArg(pub String);

impl FromDatum for JsonbArg {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        _: pg_sys::Oid,
    ) -> Option<JsonbArg> {
        if is_null {
            return None;
        }
        // SAFETY: the datum is a jsonb (the SQL signature says so); jsonb_out returns a
        // palloc'd C string that we copy and free, as pgrx's JsonB does.
        unsafe {
            let varlena = datum.cast_mut_ptr();
            let detoasted = pg_sys::pg_detoast_datum_packed(varlena);
            let cstr = direct_function_call::<&CStr>(pg_sys::jsonb_out, &[Some(detoasted.into())])?;
            let text = cstr.to_string_lossy().into_owned();
            pg_sys::pfree(cstr.as_ptr() as *mut std::ffi::c_void);
            if detoasted != varlena {
                pg_sys::pfree(detoasted as *mut std::ffi::c_void);
            }
            Some(JsonbArg(text))
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
    /// The value, or ERROR 54000 when its text is over `max_bytes`, 22023 when serde_json
    /// cannot take it (nested too deeply), naming `what`.
    pub fn parse(&self, what: &str, max_bytes: usize, domain: &'static str) -> Value {
        if self.0.len() > max_bytes {
            raise(
                PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                format!("{what}: {} bytes of JSON exceed the limit of {max_bytes} (crm.max_json_argument_bytes)", self.0.len()),
                None,
                domain,
            );
        }
        parse_json_text(&self.0).unwrap_or_else(|e| {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("{what}: {e}"),
                None,
                domain,
            )
        })
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

//! `text[]` values built with one `construct_array`, for rows returned to SQL.

use pgrx::pg_sys;
use pgrx::pgrx_sql_entity_graph::metadata::{
    ArgumentError, ReturnsError, ReturnsRef, SqlMappingRef, SqlTranslatable,
};

/// A `text[]` column, built with one `construct_array` (pgrx's `Vec<String>` conversion costs
/// 2,000 instructions for a one-element array, a quarter of what returning a validated
/// message's row cost).
pub struct TextArray(pub Vec<String>);

impl pgrx::IntoDatum for TextArray {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        let mut elems: Vec<pg_sys::Datum> = self
            .0
            .iter()
            .map(|s| {
                // SAFETY: cstring_to_text_with_len copies `len` bytes into a palloc'd text.
                let text =
                    unsafe { pg_sys::cstring_to_text_with_len(s.as_ptr().cast(), s.len() as i32) };
                pg_sys::Datum::from(text)
            })
            .collect();
        // SAFETY: `elems` holds `len` text datums; text is varlena (-1), not by value, int-aligned.
        let array = unsafe {
            pg_sys::construct_array(
                elems.as_mut_ptr(),
                elems.len() as i32,
                pg_sys::TEXTOID,
                -1,
                false,
                pg_sys::TYPALIGN_INT as std::ffi::c_char,
            )
        };
        Some(pg_sys::Datum::from(array))
    }

    fn type_oid() -> pg_sys::Oid {
        pg_sys::TEXTARRAYOID
    }
}

// SAFETY: declared as text[], what into_datum builds.
unsafe impl SqlTranslatable for TextArray {
    const TYPE_IDENT: &'static str = <Vec<String> as SqlTranslatable>::TYPE_IDENT;
    const TYPE_ORIGIN: pgrx::pgrx_sql_entity_graph::metadata::TypeOrigin =
        <Vec<String> as SqlTranslatable>::TYPE_ORIGIN;
    const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> =
        <Vec<String> as SqlTranslatable>::ARGUMENT_SQL;
    const RETURN_SQL: Result<ReturnsRef, ReturnsError> =
        <Vec<String> as SqlTranslatable>::RETURN_SQL;
}

// SAFETY: as pgrx's own BoxRet for Vec<T>: the datum into_datum made, or NULL.
unsafe impl pgrx::callconv::BoxRet for TextArray {
    unsafe fn box_into<'fcx>(
        self,
        fcinfo: &mut pgrx::callconv::FcInfo<'fcx>,
    ) -> pgrx::datum::Datum<'fcx> {
        match pgrx::IntoDatum::into_datum(self) {
            Some(datum) => unsafe { fcinfo.return_raw_datum(datum) },
            None => fcinfo.return_null(),
        }
    }
}
